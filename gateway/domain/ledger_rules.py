"""Ledger arithmetic: which lots a spend consumes, and how entries move balances.

Balances are six counters. Every ledger entry carries the exact change it makes
to them (its ``delta``), so a member's balances are always the sum of the deltas
of their entries; that is what the audit checks. ``held`` counts points on hold
(a checkout deduction or an unpaid redemption): no longer spendable, not yet spent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

BALANCE_FIELDS = ("available", "pending", "lifetimeEarned", "spent", "expired", "held")
NEVER = datetime.max
NEVER_DUE = datetime(9999, 12, 31, tzinfo=UTC)  # a member's nextDueAt when nothing can fall due


@dataclass(frozen=True)
class Lot:
    """Points earned together, spent and expired together."""

    id: object
    remaining: int
    expires_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Take:
    lot_id: object
    points: int


def expiry_order(lot: Lot) -> tuple[datetime, datetime]:
    """Soonest-expiring first (never-expiring last); among equals, oldest first."""
    expires = lot.expires_at.replace(tzinfo=None) if lot.expires_at else NEVER
    return expires, lot.created_at.replace(tzinfo=None)


def allocate(lots: Iterable[Lot], points: int) -> tuple[list[Take], int]:
    """Take ``points`` from ``lots`` soonest-expiring first.

    Returns the takes and the shortfall (points that no lot could cover).
    """
    if points < 0:
        raise ValueError("points must not be negative")
    takes: list[Take] = []
    left = points
    for lot in sorted(lots, key=expiry_order):
        if left == 0:
            break
        take = min(lot.remaining, left)
        if take > 0:
            takes.append(Take(lot.id, take))
            left -= take
    return takes, left


def give_back(takes: list[Take], already_returned: dict[object, int], points: int | None = None) -> list[Take]:
    """What undoing a spend puts back, lot by lot: everything still open, or ``points`` of it.

    A spend took the soonest-expiring lots first, so a partial return undoes its
    last takes first, as if less had been spent; no lot ever gets back more than
    was taken from it, across any number of partial returns.
    """
    still_open = [Take(t.lot_id, t.points - already_returned.get(t.lot_id, 0)) for t in takes]
    still_open = [t for t in still_open if t.points > 0]
    total = sum(t.points for t in still_open)
    wanted = total if points is None else points
    if not 0 <= wanted <= total:
        raise ValueError(f"cannot give back {wanted} points: {total} are still open")
    result: list[Take] = []
    for take in reversed(still_open):
        if wanted == 0:
            break
        part = min(take.points, wanted)
        result.append(Take(take.lot_id, part))
        wanted -= part
    return result


def zero_delta() -> dict[str, int]:
    return dict.fromkeys(BALANCE_FIELDS, 0)


def delta(**changes: int) -> dict[str, int]:
    unknown = set(changes) - set(BALANCE_FIELDS)
    if unknown:
        raise ValueError(f"unknown balance fields: {sorted(unknown)}")
    return {**zero_delta(), **changes}


def apply_delta(balances: dict[str, int], change: dict[str, int]) -> dict[str, int]:
    return {name: balances.get(name, 0) + change.get(name, 0) for name in BALANCE_FIELDS}


def net_points(change: dict[str, int]) -> int:
    """What the entry changes in the points a member holds (available + pending + held).

    Putting points on hold moves them between two of these, so a hold nets 0 and
    its posting nets the spend; a void nets 0 (or the part that lapsed meanwhile).
    """
    return change.get("available", 0) + change.get("pending", 0) + change.get("held", 0)
