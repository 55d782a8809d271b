"""The program's calendar: local days and the day / week / month / year periods they fall in.

One vocabulary for every rule that counts "per period" (earn caps, benefit quotas, gift limits,
analytics months): periods are calendar periods in the program's time zone, weeks start on
Monday, and an instant belongs to the local day it falls on.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class Period(StrEnum):
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
    YEAR = "YEAR"


def local_date(instant: datetime, timezone: str) -> date:
    """The calendar day ``instant`` falls on in the program's timezone."""
    return instant.astimezone(ZoneInfo(timezone)).date()


def day_start(day: date, timezone: str) -> datetime:
    """The instant a local calendar day begins (as an aware datetime)."""
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(timezone))


def period_bounds(day: date, period: Period) -> tuple[date, date]:
    """The local days [start, end) of the DAY / WEEK (Monday first) / MONTH / YEAR containing ``day``."""
    if period is Period.DAY:
        return day, day + timedelta(days=1)
    if period is Period.WEEK:
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period is Period.MONTH:
        start = day.replace(day=1)
        end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
        return start, end
    return date(day.year, 1, 1), date(day.year + 1, 1, 1)


def period_key(day: date, period: Period) -> str:
    """A stable name of the period containing ``day`` (quota usage is counted per key)."""
    start, _ = period_bounds(day, period)
    return f"{period.value}:{start.isoformat()}"


def period_start(instant: datetime, period: Period, timezone: str) -> datetime:
    """The instant (in UTC) the local period containing ``instant`` began."""
    start, _ = period_bounds(local_date(instant, timezone), period)
    return day_start(start, timezone).astimezone(UTC)
