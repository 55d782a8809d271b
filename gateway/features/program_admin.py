"""Changing the program configuration: partial updates, validated as a whole before saving.

An admin sends only the fields to change; they are merged into the stored
program and the result is validated by the same pydantic model that loads it,
so an invalid program is never stored (the client gets BAD_USER_INPUT with the
reasons). Changes apply to what happens next; nothing already earned changes.

Concurrency: the merge is re-applied on the freshest program until its
compare-and-set save wins, so two admins changing different fields at once both
land. An admin who sends ``expectedVersion`` (the version they looked at) gets
CONFLICT instead when someone else saved in between.

Tiers: a tier's ``code`` is its stable id (members and gifts store it); a rename
changes the name and keeps the code. A tier whose code disappears from the list
is removed, which is refused (TIER_IN_USE) while members hold it or gifts require
it, unless a replacement tier is named: then members, gifts and the program move
together in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from gateway.core.auth import Principal
from gateway.core.errors import BadInput, Conflict, DomainError, quote
from gateway.domain.admin_audit import AuditAction
from gateway.domain.config_diff import MISSING, diff
from gateway.domain.program import Program, Tier
from gateway.features.admin_audit import AdminAudit
from gateway.store import gifts as gifts_store
from gateway.store import members as members_store
from gateway.store.mongo import Database
from gateway.store.program import StaleProgram, load_versioned, replace_program

MAX_ATTEMPTS = 50


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in ("behaviours", "caps"):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def updated_program(program: Program, changes: dict[str, Any]) -> Program:
    """``program`` with ``changes`` (nested, snake_case) applied; BadInput if the result is invalid."""
    data = _merge(program.model_dump(mode="json"), changes)
    try:
        result = Program.model_validate(data)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise BadInput(f"Invalid program: {reasons}", field="input") from None
    try:
        ZoneInfo(result.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadInput(f"Unknown timezone {quote(result.timezone)}", field="timezone") from None
    for event in result.earning.behaviours:
        if not event or not event.replace("_", "").isalnum() or not event.isupper():
            raise BadInput(f"Behaviour event {quote(event)} must be UPPER_SNAKE_CASE", field="behaviours")
    if any(points < 0 for points in result.earning.behaviours.values()):
        raise BadInput("Behaviour points must not be negative", field="behaviours")
    if any(not 0 <= d <= 6 for d in result.earning.member_day_weekdays):
        raise BadInput("memberDayWeekdays are 0 (Monday) to 6 (Sunday)", field="memberDayWeekdays")
    if any(not 1 <= d <= 31 for d in result.earning.member_day_month_days):
        raise BadInput("memberDayMonthDays are 1 to 31", field="memberDayMonthDays")
    return result


def _check_version(expected: int | None, current: int) -> None:
    if expected is not None and expected != current:
        raise Conflict(
            f"The program changed (version {current}, you edited version {expected}); reload and retry",
            currentVersion=current,
        )


class ConfigAudit:
    """Records a program change in the admin audit log, in the change's own transaction: the
    entry says which part changed (``section``) and carries the field-by-field diff."""

    def __init__(self, audit: AdminAudit, actor: Principal, section: str) -> None:
        self.audit = audit
        self.actor = actor
        self.section = section

    async def __call__(self, session: Any, before: Program, after: Program, version: int) -> None:
        changes = diff(before.model_dump(mode="json"), after.model_dump(mode="json"))
        details = {
            "version": version,
            "changes": [{"path": c.path, "old": _shown(c.old), "new": _shown(c.new)} for c in changes],
        }
        await self.audit.record(
            self.actor, AuditAction.CONFIG_CHANGE, "program", self.section, details, session=session
        )


def _shown(value: Any) -> Any:
    return None if value is MISSING else value


async def update_program(
    db: Database,
    changes: dict[str, Any],
    *,
    expected_version: int | None = None,
    audit: ConfigAudit | None = None,
) -> tuple[Program, int]:
    """Apply ``changes`` to the current program; returns it with its new version. With ``audit``
    the save and its audit entry commit together."""

    async def work(session: Any) -> tuple[Program, int]:
        program, version = await load_versioned(db, session)
        _check_version(expected_version, version)
        result = updated_program(program, changes)
        saved = await replace_program(db, result, version=version, session=session)
        if audit is not None:
            await audit(session, program, result, saved)
        return result, saved

    for _ in range(MAX_ATTEMPTS):
        try:
            if audit is None:
                return await work(None)
            return await db.transaction(work)
        except StaleProgram:
            continue
    raise Conflict("The program is being changed by others; retry")


async def update_tiers(
    db: Database,
    tiers: list[dict[str, Any]],
    *,
    replacements: dict[str, str],
    now: datetime,
    expected_version: int | None = None,
    audit: ConfigAudit | None = None,
) -> tuple[Program, int]:
    """Replace the tier list; removed codes still in use move to their named replacement.

    Everything (program, members, gifts, the members' tier-change records) commits in
    one transaction, which retries as a whole if another admin saved in between.
    """

    async def work(session: Any) -> tuple[Program, int]:
        before, version = await load_versioned(db, session)
        _check_version(expected_version, version)
        after = updated_program(before, {"tiers": tiers})
        kept = {t.code for t in after.tiers}
        removed = [t for t in before.tiers if t.code not in kept]
        removed_codes = {t.code for t in removed}
        for code, target in replacements.items():
            if code not in removed_codes:
                raise BadInput(f"Tier {code!r} is not being removed, so it needs no replacement", field="replacements")
            if target not in kept:
                raise BadInput(f"Replacement {target!r} is not one of the new tiers", field="replacements")
        for tier in removed:
            replacement = replacements.get(tier.code)
            if replacement is None:
                members = await members_store.count_in_tier(db, tier.code, session)
                gifts = await gifts_store.count_requiring_tier(db, tier.code, session)
                if members or gifts:
                    raise DomainError(
                        f"Tier {tier.code!r} is held by {members} members and required by {gifts} gifts; "
                        "name a replacement tier to move them",
                        code="TIER_IN_USE",
                        tier=tier.code,
                        members=members,
                        gifts=gifts,
                    )
                continue
            await _move_tier(db, session, tier.code, after.tier(replacement), before, now)
        try:
            saved = await replace_program(db, after, version=version, session=session)
        except StaleProgram:
            raise Conflict("The program changed while the tiers were saved; retry") from None
        if audit is not None:
            await audit(session, before, after, saved)
        return after, saved

    for _ in range(MAX_ATTEMPTS):
        try:
            return await db.transaction(work)
        except Conflict:
            if expected_version is not None:
                raise
    raise Conflict("The program is being changed by others; retry")


async def _move_tier(db: Database, session: Any, code: str, target: Tier, before: Program, now: datetime) -> None:
    """Members holding ``code`` and gifts requiring it move to ``target`` (inside the caller's transaction)."""
    await gifts_store.move_min_tier(db, code, target.code, now, session)
    old = next(t for t in before.tiers if t.code == code)
    await members_store.move_tier(
        db,
        code,
        target.code,
        direction="UP" if target.threshold > old.threshold else "DOWN",
        reason=f"Tier {code} removed; moved to {target.code}",
        now=now,
        session=session,
    )
