"""The expiry job (积分过期): settles every member with due lots, exactly once per lot.

It only finds who has something due and calls ``Ledger.settle`` for each: the
ledger locks the member, re-reads the lots inside the transaction and expires a
lot only while it still holds points, so two gateways running the job at the
same instant serialize per member and the second finds nothing left to do.
Pending lots whose return window has closed are released by the same pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.core.clock import as_utc
from gateway.ledger.transaction import EntryKind, Ledger, LotState
from gateway.store.mongo import Database

log = logging.getLogger(__name__)


@dataclass
class ExpiryReport:
    members: int = 0
    expired_points: int = 0
    expired_lots: int = 0
    released_points: int = 0
    released_lots: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"settled {self.members} members: expired {self.expired_points} points in {self.expired_lots} lots, "
            f"released {self.released_points} pending points in {self.released_lots} lots"
        )


async def members_with_due_lots(db: Database, now: datetime) -> list[str]:
    due = {
        "$or": [
            {"state": LotState.AVAILABLE, "remaining": {"$gt": 0}, "expiresAt": {"$ne": None, "$lte": now}},
            {"state": LotState.PENDING, "availableAt": {"$lte": now}},
        ]
    }
    return sorted(await db.lots.distinct("memberId", due))


async def expire_points(db: Database, ledger: Ledger) -> ExpiryReport:
    """One pass over every member with due lots; each member is its own transaction."""
    report = ExpiryReport()
    for member_id in await members_with_due_lots(db, ledger.clock.now()):
        try:
            entries = await ledger.settle(member_id)
        except Exception as exc:  # one broken member must not stop the others
            log.exception("settling %s failed", member_id)
            report.errors.append(f"{member_id}: {exc}")
            continue
        report.members += 1
        for entry in entries:
            if entry["kind"] == EntryKind.EXPIRE:
                report.expired_points += entry["delta"]["expired"]
                report.expired_lots += 1
            elif entry["kind"] == EntryKind.RELEASE:
                report.released_points += entry["delta"]["available"]
                report.released_lots += 1
    return report


@dataclass(frozen=True)
class ExpiringPoints:
    points: int
    expires_at: datetime


async def expiring_points(db: Database, member_id: str, now: datetime, days: int) -> list[ExpiringPoints]:
    """Points held in lots that expire within ``days`` (pending lots included), grouped by instant."""
    until = now + timedelta(days=days)
    lots = db.lots.find(
        {"memberId": member_id, "remaining": {"$gt": 0}, "expiresAt": {"$gt": now, "$lte": until}},
        {"remaining": 1, "expiresAt": 1},
    ).sort("expiresAt", 1)
    grouped: dict[datetime, int] = {}
    async for lot in lots:
        at = as_utc(lot["expiresAt"])
        grouped[at] = grouped.get(at, 0) + lot["remaining"]
    return [ExpiringPoints(points=p, expires_at=at) for at, p in grouped.items()]
