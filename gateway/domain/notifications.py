"""Member notifications: which reminders are due, how each is named once, how deliveries are signed
and retried. Pure rules; the store finds the facts and the dispatcher sends.

A notification is sent once per member, reason and period. Its id *is* that identity, so a second
scan (on any replica, or after a restart) finds the id taken and sends nothing again.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum


class Reason(StrEnum):
    POINTS_EXPIRING = "POINTS_EXPIRING"  # a rolling-expiry lot is about to expire
    ANNUAL_CLEARING = "ANNUAL_CLEARING"  # the annual clearing (清零) is about to take points
    TIER_UP = "TIER_UP"
    TIER_DOWN = "TIER_DOWN"
    REDEMPTION_SHIPPED = "REDEMPTION_SHIPPED"


class Status(StrEnum):
    PENDING = "PENDING"  # waiting for its next attempt
    DELIVERED = "DELIVERED"  # every target took it (or it had none)
    DEAD = "DEAD"  # a target still refused it after the last attempt: a dead letter
    SUPERSEDED = "SUPERSEDED"  # a reminder made moot by a more urgent one; never sent


@dataclass(frozen=True)
class ExpiringGroup:
    """What one member loses on one local expiry day: the store sums the member's lots."""

    member_id: str
    expires_on: date
    expires_at: datetime  # the earliest instant of the group, for the message
    points: int


@dataclass(frozen=True)
class Reminder:
    """One due reminder: the id names member, reason and period, so it is sent once."""

    id: str
    reason: Reason
    member_id: str
    expires_on: date
    days_before: int
    points: int
    expires_at: datetime

    def superseded_ids(self, reminder_days: tuple[int, ...]) -> list[str]:
        """The larger thresholds this reminder makes moot: recorded as superseded, never sent late."""
        return [
            reminder_id(self.reason, self.member_id, self.expires_on, n) for n in reminder_days if n > self.days_before
        ]


def reminder_id(reason: Reason, member_id: str, expires_on: date, days_before: int) -> str:
    return f"{reason.value}:{member_id}:{expires_on.isoformat()}:{days_before}d"


def due_reminders(
    groups: list[ExpiringGroup], now: datetime, reminder_days: tuple[int, ...], *, annual_clearing: bool
) -> list[Reminder]:
    """The reminders due now, at most one per member and expiry day: the most urgent one crossed.

    A reminder "N days before" is due once ``expires_at − N days ≤ now < expires_at``. When the job
    was away and several thresholds are crossed at once, only the smallest N is sent; the larger
    ones are recorded as superseded (``Reminder.superseded_ids``), so they never fire late.
    """
    reason = Reason.ANNUAL_CLEARING if annual_clearing else Reason.POINTS_EXPIRING
    due: list[Reminder] = []
    for group in groups:
        if group.points <= 0 or group.expires_at <= now:
            continue
        crossed = [n for n in reminder_days if group.expires_at - timedelta(days=n) <= now]
        if not crossed:
            continue
        days = min(crossed)
        due.append(
            Reminder(
                id=reminder_id(reason, group.member_id, group.expires_on, days),
                reason=reason,
                member_id=group.member_id,
                expires_on=group.expires_on,
                days_before=days,
                points=group.points,
                expires_at=group.expires_at,
            )
        )
    return due


def tier_change_id(change_id: str) -> str:
    return f"TIER:{change_id}"


def shipped_id(order_id: str) -> str:
    return f"{Reason.REDEMPTION_SHIPPED.value}:{order_id}"


# -- delivery ------------------------------------------------------------------------------------

SIGNATURE_VERSION = "v1"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``: the receiver recomputes it and
    rejects a stale timestamp, so a captured delivery cannot be replayed later."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={mac}"


def verify(secret: str, timestamp: int, body: bytes, header: str, now: int, tolerance: int = 300) -> bool:
    """What a receiver does (documented, and used by the tests' receiver)."""
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(signature(secret, timestamp, body), header)


def retry_delay(
    attempt: int, *, base: timedelta = timedelta(seconds=30), cap: timedelta = timedelta(hours=6)
) -> timedelta:
    """Exponential backoff after failed attempt ``attempt`` (1-based): 30 s, 1 min, 2 min … at most 6 h."""
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    return min(base * (2 ** (attempt - 1)), cap)
