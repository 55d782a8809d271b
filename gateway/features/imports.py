"""Operator CSV imports: members, gifts and mass grants, row by row through the feature services.

- Each row goes through the same service (and so the same validation) as the GraphQL API:
  ``Members.register``, ``Catalog.create``, an operator grant (``grantPoints`` without its approval
  step: the operator running the import answers for it; the ledger writes the balances). A row
  that fails is reported with its line, code and reason; the others apply.
- Idempotent per row: a member or gift whose id exists with the same fields is ``unchanged``; a
  grant carries an idempotency key derived from the batch and the row (``domain.imports``), so
  running a file again replays instead of granting twice.
- Resumable: a checkpoint (``store.import_runs``) records the line after the last finished row
  every ``CHECKPOINT_EVERY`` rows and when interrupted. Running the same file (same content, same
  batch) again continues from there; a changed file starts over, which idempotency makes safe.
- Dry run: parses and checks every row against the database without writing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pymongo.errors import PyMongoError

from gateway.core.auth import Principal, Role
from gateway.core.errors import BadInput, DomainError
from gateway.domain.admin_audit import AuditAction
from gateway.domain.calendar import Period
from gateway.domain.catalog import Limits
from gateway.domain.grant_approval import GrantAsk, GrantInvalid
from gateway.domain.imports import GiftRow, GrantRow, ImportKind, MemberRow, ParsedRow, fingerprint, parse
from gateway.features.admin_audit import AdminAudit
from gateway.features.catalog import GiftSpec, spec_of
from gateway.features.grants import post_grant
from gateway.features.members import Registration
from gateway.ledger import EntryKind, Idempotency, Ledger, LedgerTx, Memo, Source
from gateway.store.import_runs import load_run, save_run
from gateway.store.program import load_program

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from gateway.core.clock import Clock
    from gateway.domain.program import Program
    from gateway.features.catalog import Catalog
    from gateway.features.members import Members
    from gateway.store.mongo import Database, Document

CHECKPOINT_EVERY = 25
ROW_ATTEMPTS = 3
IMPORT_PRINCIPAL = Principal(role=Role.ADMIN, subject="cli-import")
BATCH = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
OUTCOMES = ("created", "would create", "granted", "would grant", "unchanged", "already granted", "failed")


@dataclass(frozen=True)
class RowOutcome:
    line: int
    outcome: str
    raw: dict[str, str]
    code: str | None = None
    message: str | None = None

    @property
    def failed(self) -> bool:
        return self.code is not None


@dataclass
class ImportReport:
    kind: ImportKind
    batch: str
    dry_run: bool
    rows: int
    resumed_from: int | None = None
    restarted: bool = False
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[RowOutcome] = field(default_factory=list)
    interrupted: bool = False

    def summary(self) -> str:
        ordered = sorted(self.counts.items(), key=lambda item: (OUTCOMES.index(item[0]), item[0]))
        counted = ", ".join(f"{n} {outcome}" for outcome, n in ordered if n) or "no rows"
        return f"{self.kind} import {self.batch!r}: {counted}"


def batch_name(value: str) -> str:
    if not BATCH.fullmatch(value):
        raise DomainError("the batch name may use 1 to 64 letters, digits or _.:-", code="BAD_USER_INPUT")
    return value


def gift_spec(row: GiftRow) -> GiftSpec:
    return GiftSpec(
        name=row.name,
        category=row.category,
        cost_price=row.cost_price,
        points=row.points,
        cash=row.cash,
        description=row.description,
        image_url=row.image_url,
        min_tier=row.min_tier,
        limits=Limits(
            per_member=row.per_member,
            period=Period(row.period) if row.period else None,
            per_order=row.per_order,
        ),
        listed=row.listed,
        list_from=row.list_from,
        list_until=row.list_until,
    )


def registration(row: MemberRow) -> Registration:
    return Registration(
        display_name=row.display_name,
        email=row.email,
        phone=row.phone,
        birthday=row.birthday,
        referrer_id=row.referrer_id,
        member_id=row.id,
    )


def _same_member(doc: dict[str, Any], reg: Registration) -> bool:
    return (
        doc.get("displayName") == reg.display_name
        and doc.get("email") == reg.email
        and doc.get("phone") == reg.phone
        and doc.get("birthday") == (reg.birthday.isoformat() if reg.birthday else None)
        and doc.get("referrerId") == reg.referrer_id
    )


def _failure_records(report: ImportReport) -> list[dict[str, Any]]:
    """What the checkpoint keeps of each failed row, so a resumed run reports them all again."""
    return [{"line": f.line, "code": f.code, "message": f.message} for f in report.failures]


class Importer:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        members: Members,
        catalog: Catalog,
        ledger: Ledger,
        audit: AdminAudit | None = None,
    ) -> None:
        self.audit = audit
        self.db = db
        self.clock = clock
        self.members = members
        self.catalog = catalog
        self.ledger = ledger
        self._dry_members: set[str] = set()

    async def run(
        self,
        kind: ImportKind,
        text: str,
        *,
        batch: str,
        dry_run: bool = False,
        on_start: Callable[[ImportReport], None] | None = None,
        on_row: Callable[[RowOutcome], None] | None = None,
    ) -> ImportReport:
        """Import ``text`` (a CSV file's content); HeaderError when the file as a whole is unusable."""
        batch = batch_name(batch)
        self._dry_members = set()  # members a dry run would have created so far (referrers later in the file)
        rows = parse(kind, text)
        report = ImportReport(kind=kind, batch=batch, dry_run=dry_run, rows=len(rows))
        db, clock = self.db, self.clock
        digest = fingerprint(text)
        start_line = 0
        if not dry_run:
            run = await load_run(db, str(kind), batch)
            if run is not None and not run["finished"]:
                if run["fingerprint"] == digest:
                    start_line = run["nextLine"]
                    report.resumed_from = start_line
                    report.counts.update(run.get("counts") or {})
                    raw_by_line = {parsed.line: parsed.raw for parsed in rows}
                    report.failures.extend(
                        RowOutcome(f["line"], "failed", raw_by_line.get(f["line"], {}), f["code"], f["message"])
                        for f in run.get("failures") or []
                    )
                else:
                    report.restarted = True
            await save_run(
                db,
                str(kind),
                batch,
                fingerprint=digest,
                next_line=start_line,
                counts=dict(report.counts),
                failures=_failure_records(report),
                finished=False,
                now=clock.now(),
                started=report.resumed_from is None,
            )
        if on_start:
            on_start(report)
        program = await load_program(db)
        next_line = start_line
        done_since_checkpoint = 0
        try:
            for parsed in rows:
                if parsed.line < start_line:
                    continue
                outcome = await self._one(kind, parsed, batch, program, dry_run)
                report.counts[outcome.outcome] += 1
                if outcome.failed:
                    report.failures.append(outcome)
                next_line = parsed.line + 1
                done_since_checkpoint += 1
                if on_row:
                    on_row(outcome)
                if not dry_run and done_since_checkpoint >= CHECKPOINT_EVERY:
                    await self._checkpoint(kind, batch, digest, next_line, report, finished=False)
                    done_since_checkpoint = 0
        except BaseException as exc:  # interrupted (Ctrl-C, SIGTERM) or the database went away
            report.interrupted = isinstance(exc, asyncio.CancelledError | KeyboardInterrupt)
            if not dry_run:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._checkpoint(kind, batch, digest, next_line, report, finished=False))
            raise
        if not dry_run:
            await self._checkpoint(kind, batch, digest, next_line, report, finished=True)
            if self.audit is not None:  # one entry per finished run (a resumed run says where it resumed)
                details = {
                    "rows": report.rows,
                    "counts": dict(report.counts),
                    "failed": len(report.failures),
                    "resumedFrom": report.resumed_from,
                }
                await self.audit.record(IMPORT_PRINCIPAL, AuditAction.IMPORT, f"import:{kind}", batch, details)
        return report

    async def _checkpoint(
        self, kind: ImportKind, batch: str, digest: str, next_line: int, report: ImportReport, *, finished: bool
    ) -> None:
        await save_run(
            self.db,
            str(kind),
            batch,
            fingerprint=digest,
            next_line=next_line,
            counts=dict(report.counts),
            failures=_failure_records(report),
            finished=finished,
            now=self.clock.now(),
        )

    async def _one(
        self, kind: ImportKind, parsed: ParsedRow[Any], batch: str, program: Program, dry_run: bool
    ) -> RowOutcome:
        if parsed.row is None:
            return RowOutcome(parsed.line, "failed", parsed.raw, "MALFORMED_ROW", "; ".join(parsed.errors))
        for attempt in range(1, ROW_ATTEMPTS + 1):
            try:
                if kind is ImportKind.MEMBERS:
                    outcome = await self._member(parsed.row, program, dry_run)
                elif kind is ImportKind.GIFTS:
                    outcome = await self._gift(parsed.row, program, dry_run)
                else:
                    outcome = await self._grant(parsed.row, batch, dry_run)
            except DomainError as exc:
                return RowOutcome(parsed.line, "failed", parsed.raw, exc.code, str(exc))
            except PyMongoError as exc:
                # A member still locked by a transaction that a killed process left open: the server
                # aborts it after transactionLifetimeLimitSeconds (60 s by default); then the row goes on.
                if not exc.has_error_label("TransientTransactionError") or attempt == ROW_ATTEMPTS:
                    raise
                log.warning("import row %s waits for a conflicting transaction to end", parsed.line)
                continue
            return RowOutcome(parsed.line, outcome, parsed.raw)
        raise AssertionError("unreachable")

    async def _member(self, row: MemberRow, program: Program, dry_run: bool) -> str:
        members = self.members
        reg = registration(row).validated(self.clock.now().date())
        existing = (await members.get_many([row.id])).get(row.id)
        if existing is not None:
            if _same_member(existing, reg):
                return "unchanged"
            raise DomainError(
                f"member {row.id!r} already exists with other details; change it through the API",
                code="ALREADY_EXISTS",
            )
        if dry_run:
            referrer = reg.referrer_id
            if referrer is not None and referrer not in self._dry_members and not await members.get_many([referrer]):
                raise DomainError(f"Member {referrer!r} not found", code="MEMBER_NOT_FOUND")
            self._dry_members.add(row.id)
            return "would create"
        await members.register(reg, program)
        return "created"

    async def _gift(self, row: GiftRow, program: Program, dry_run: bool) -> str:
        catalog = self.catalog
        spec = gift_spec(row).validated(program)
        if not 0 <= row.stock <= 100_000_000:
            raise DomainError("stock must be a non-negative count", code="BAD_USER_INPUT")
        existing = (await catalog.get_many([row.id])).get(row.id)
        if existing is not None:
            if spec_of(existing).validated(program) == spec:
                return "unchanged"
            raise DomainError(
                f"gift {row.id!r} already exists with other details; change it with updateGift or restockGift",
                code="ALREADY_EXISTS",
            )
        if dry_run:
            return "would create"
        await catalog.create(spec, row.stock, program, gift_id=row.id)
        return "created"

    async def _grant(self, row: GrantRow, batch: str, dry_run: bool) -> str:
        key = f"import:{batch}:{row.key}"
        if dry_run:
            member = (await self.members.get_many([row.member_id])).get(row.member_id)
            if member is None:
                raise DomainError(f"Member {row.member_id!r} not found", code="MEMBER_NOT_FOUND")
            if row.points < 0 and member["balances"]["available"] < -row.points:
                raise DomainError(
                    f"the adjustment of {row.points} exceeds the {member['balances']['available']} available points",
                    code="INSUFFICIENT_POINTS",
                )
            return "would grant"
        try:
            ask = GrantAsk.parse([row.member_id], row.points, row.reason)
        except GrantInvalid as exc:
            raise BadInput(str(exc), field=exc.field) from None
        # an operator grant: the operator who runs the import answers for it (no approval step)
        idem = Idempotency.for_caller(
            IMPORT_PRINCIPAL, key, "grantPoints", memberIds=sorted(ask.member_ids), points=ask.points, reason=ask.reason
        )
        kind = EntryKind.GRANT if ask.points > 0 else EntryKind.ADJUSTMENT
        memo = Memo(kind, ask.reason, Source("OPERATOR", IMPORT_PRINCIPAL.subject))

        async def work(tx: LedgerTx) -> Document:
            entry_ids = await post_grant(tx, list(ask.member_ids), ask.points, memo)
            return {"memberIds": list(ask.member_ids), "points": ask.points, "entryIds": entry_ids}

        result = await self.ledger.transact(work, idempotency=idem)
        return "already granted" if result.get("replayed") else "granted"
