"""Ledger arithmetic: which lots a spend consumes, and how entries move balances.

Balances are five counters. Every ledger entry carries the exact change it makes
to them (its ``delta``), so a member's balances are always the sum of the deltas
of their entries; that is what the audit checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

BALANCE_FIELDS = ("available", "pending", "lifetimeEarned", "spent", "expired")
NEVER = datetime.max


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
    """What the entry changes in the points a member holds (available + pending)."""
    return change.get("available", 0) + change.get("pending", 0)
