"""Changing the program configuration: partial updates, validated as a whole before saving.

An admin sends only the fields to change; they are merged into the stored
program and the result is validated by the same pydantic model that loads it,
so an invalid program is never stored (the client gets BAD_USER_INPUT with the
reasons). Changes apply to what happens next; nothing already earned changes.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from gateway.core.errors import BadInput, quote
from gateway.domain.program import Program
from gateway.store.mongo import Database
from gateway.store.program import load_program, save_program


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


async def update_program(db: Database, changes: dict[str, Any]) -> Program:
    return await save_program(db, updated_program(await load_program(db), changes))
