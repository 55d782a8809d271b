"""Two-phase points moves (a hold, then post or void), as pure rules.

A hold is a pending transfer in the TigerBeetle sense: the points leave
``available`` for ``held`` at once (so they cannot be spent twice), and later
either **post** (they become ``spent``) or **void** (they return to the lots they
came from, keeping their expiry). A hold has a deadline: past it, it can no
longer post and the hold sweeper voids it.

    HELD --post (before the deadline)--> POSTED
    HELD --void (any time)-------------> VOIDED

Posting or voiding a hold that is no longer HELD is refused with the reason,
except voiding a VOIDED hold, which is a no-op (a retried cancel, or a cancel
racing the sweeper, must not fail).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gateway.domain.earning import max_deduction_points
from gateway.domain.program import DeductionRules


class HoldStatus(StrEnum):
    HELD = "HELD"
    POSTED = "POSTED"
    VOIDED = "VOIDED"


class HoldAction(StrEnum):
    POST = "POST"
    VOID = "VOID"


class HoldRefusal(StrEnum):
    """Why a hold cannot take an action; each is also the error code a client sees."""

    HOLD_ALREADY_POSTED = "HOLD_ALREADY_POSTED"
    HOLD_ALREADY_VOIDED = "HOLD_ALREADY_VOIDED"
    HOLD_EXPIRED = "HOLD_EXPIRED"


@dataclass(frozen=True)
class Transition:
    """What an action does to a hold: the new status, or ``refusal`` (and no change)."""

    to: HoldStatus | None
    refusal: HoldRefusal | None = None

    @property
    def changes(self) -> bool:
        return self.to is not None


def transition(status: HoldStatus, action: HoldAction, *, expires_at: datetime, now: datetime) -> Transition:
    """The outcome of ``action`` on a hold in ``status`` whose deadline is ``expires_at``."""
    if status is HoldStatus.POSTED:
        return Transition(None, HoldRefusal.HOLD_ALREADY_POSTED)
    if status is HoldStatus.VOIDED:
        if action is HoldAction.VOID:
            return Transition(None)  # already where the caller wants it
        return Transition(None, HoldRefusal.HOLD_ALREADY_VOIDED)
    if action is HoldAction.POST:
        if now >= expires_at:
            return Transition(None, HoldRefusal.HOLD_EXPIRED)
        return Transition(HoldStatus.POSTED)
    return Transition(HoldStatus.VOIDED)


def deadline(now: datetime, minutes: float) -> datetime:
    """When a hold made at ``now`` stops being postable."""
    if minutes <= 0:
        raise ValueError("a hold needs a positive timeout")
    return now + timedelta(minutes=minutes)


def is_due_for_void(status: HoldStatus, expires_at: datetime, now: datetime) -> bool:
    """The sweeper voids holds still HELD at or past their deadline."""
    return status is HoldStatus.HELD and now >= expires_at


@dataclass(frozen=True)
class CapCheck:
    """The per-order cap re-checked when the real order arrives."""

    order_amount_fen: int
    max_points: int
    points: int

    @property
    def over_cap(self) -> bool:
        return self.points > self.max_points


def deduction_cap_at_posting(points: int, value_fen: int, paid_fen: int, rules: DeductionRules) -> CapCheck:
    """Re-check a checkout deduction against the order as it was really paid.

    ``recordPurchase`` reports the money paid (``paid_fen``); the points took
    ``value_fen`` off the order, so the real order amount is their sum. The caller's
    ``orderAmount`` at hold time is a claim; this is the check that counts.
    """
    if points <= 0 or value_fen < 0 or paid_fen < 0:
        raise ValueError("points must be positive and amounts not negative")
    order = paid_fen + value_fen
    return CapCheck(order_amount_fen=order, max_points=max_deduction_points(order, rules), points=points)
