"""The expiry job (积分过期): settles every member with due lots, exactly once per lot.

It only finds who has something due and calls ``Ledger.settle`` for each: the
ledger locks the member, re-reads the lots inside the transaction and expires a
lot only while it still holds points, so two runs at the same instant serialize
per member and the second finds nothing left to do. Pending lots whose return
window has closed are released by the same pass.

Scale: due members stream from a cursor (``store.expiry.members_with_due_lots``),
``batch_size`` ids at a time; each batch settles with at most ``concurrency``
members in flight, so memory and load stay bounded however many members an
annual clearing makes due at once. In a server the job runs under a lease, on
one replica at a time (``gateway.workers.scheduled``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from gateway.core.clock import as_utc
from gateway.features.batches import for_each_in_batches
from gateway.ledger import EntryKind, Ledger
from gateway.store import expiry as expiry_store
from gateway.store.mongo import Database

log = logging.getLogger(__name__)


@dataclass
class ExpiryReport:
    members: int = 0
    expired_points: int = 0
    expired_lots: int = 0
    released_points: int = 0
    released_lots: int = 0
    batches: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (
            f"settled {self.members} members in {self.batches} batches: expired {self.expired_points} points "
            f"in {self.expired_lots} lots, released {self.released_points} pending points in {self.released_lots} lots"
        )
        return text + (f", {len(self.errors)} failed" if self.errors else "")


async def members_with_due_lots(db: Database, now: datetime) -> list[str]:
    """Every member with something due now (for tools and tests; the job streams instead)."""
    return [member_id async for member_id in expiry_store.members_with_due_lots(db, now)]


async def expire_points(db: Database, ledger: Ledger, *, batch_size: int = 500, concurrency: int = 4) -> ExpiryReport:
    """One pass over every member with due lots; each member is its own transaction."""
    report = ExpiryReport()

    async def settle(member_id: str) -> None:
        try:
            entries = await ledger.settle(member_id)
        except Exception as exc:  # one broken member must not stop the others
            log.exception("settling %s failed", member_id)
            report.errors.append(f"{member_id}: {exc}")
            return
        report.members += 1
        for entry in entries:
            if entry["kind"] == EntryKind.EXPIRE:
                report.expired_points += entry["delta"]["expired"]
                report.expired_lots += 1
            elif entry["kind"] == EntryKind.RELEASE:
                report.released_points += entry["delta"]["available"]
                report.released_lots += 1

    due = expiry_store.members_with_due_lots(db, ledger.clock.now(), batch_size=batch_size)
    report.batches = await for_each_in_batches(due, settle, batch_size=batch_size, concurrency=concurrency)
    return report


@dataclass(frozen=True)
class ExpiringPoints:
    points: int
    expires_at: datetime


async def expiring_points(db: Database, member_id: str, now: datetime, days: int) -> list[ExpiringPoints]:
    """Points held in lots that expire within ``days`` (pending lots included), grouped by instant."""
    grouped: dict[datetime, int] = {}
    for lot in await expiry_store.expiring_lots(db, member_id, now, days):
        at = as_utc(lot["expiresAt"])
        grouped[at] = grouped.get(at, 0) + lot["remaining"]
    return [ExpiringPoints(points=p, expires_at=at) for at, p in grouped.items()]
