"""Paid membership (付费会员) terms as pure rules.

A term is bought as a plan (monthly, quarterly, yearly) and runs from
``starts_at`` (inclusive) to ``ends_at`` (exclusive). Renewal extends it:

- while the term is still running, from its current end, so no paid day is lost;
- once it has ended, a new term starts at the renewal instant.

Ends are whole calendar months after the start in the program's timezone,
counted from the start of the term (not from the previous end), so a term that
began on 31 January and was renewed monthly ends on 28/29 February, 31 March,
30 April..., never drifting to the 28th. A month without the start's day ends
on its last day.

The paid-member earning multiplier applies to a purchase paid inside the term.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo


class Plan(StrEnum):
    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"
    YEARLY = "YEARLY"

    @property
    def months(self) -> int:
        return {"MONTHLY": 1, "QUARTERLY": 3, "YEARLY": 12}[self.value]


def add_months(instant: datetime, months: int, timezone: str) -> datetime:
    """The same local wall-clock time ``months`` calendar months later (clamped to the month's end)."""
    local = instant.astimezone(ZoneInfo(timezone))
    years, month0 = divmod(local.month - 1 + months, 12)
    year, month = local.year + years, month0 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day).astimezone(UTC)


@dataclass(frozen=True)
class Term:
    plan: Plan
    starts_at: datetime
    months: int
    ends_at: datetime

    def active_at(self, instant: datetime) -> bool:
        return self.starts_at <= instant < self.ends_at


def start(plan: Plan, now: datetime, timezone: str) -> Term:
    return Term(plan=plan, starts_at=now, months=plan.months, ends_at=add_months(now, plan.months, timezone))


def renew(current: Term | None, plan: Plan, now: datetime, timezone: str) -> Term:
    """Buy ``plan`` at ``now``: extend a running term, else start a new one."""
    if current is None or current.ends_at <= now:
        return start(plan, now, timezone)
    months = current.months + plan.months
    return replace(current, plan=plan, months=months, ends_at=add_months(current.starts_at, months, timezone))


def end_now(current: Term, now: datetime) -> Term:
    """End a running term early (a refunded or revoked membership); an ended term is unchanged."""
    if current.ends_at <= now:
        return current
    return replace(current, ends_at=max(now, current.starts_at))


def legacy_term(paid_since: datetime | None, now: datetime, timezone: str) -> Term:
    """A member flagged paid before terms existed: one yearly term from when it was recorded."""
    return start(Plan.YEARLY, paid_since or now, timezone)
