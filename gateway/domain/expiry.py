"""When earned points expire (积分有效期)."""

from __future__ import annotations

import calendar
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.domain.program import ExpiryMode, ExpiryPolicy


def expiry_for(earned_at: datetime, policy: ExpiryPolicy, timezone: str) -> datetime | None:
    """The instant a lot earned at ``earned_at`` expires; None if it never does.

    ROLLING: ``days`` after earning. ANNUAL_CLEARING (清零): at the end of the
    clearing day of the year after the one the points were earned in, so every
    lot lives at least a year (the JD 京豆 rule: earned this year, cleared at the
    end of next year).
    """
    if policy.mode is ExpiryMode.NEVER:
        return None
    if policy.mode is ExpiryMode.ROLLING:
        return earned_at + timedelta(days=policy.days)
    zone = ZoneInfo(timezone)
    local = earned_at.astimezone(zone)
    year = local.year + 1
    day = min(policy.clearing_day, calendar.monthrange(year, policy.clearing_month)[1])
    end_of_day = datetime.combine(
        datetime(year, policy.clearing_month, day).date() + timedelta(days=1), time.min, tzinfo=zone
    )
    return end_of_day.astimezone(earned_at.tzinfo)
