"""The expiry job's queries over points lots: who has something due, and what expires soon."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from gateway.store.mongo import Database, Document

AVAILABLE = "AVAILABLE"
PENDING = "PENDING"


def due_query(now: datetime) -> Document:
    """Lots the expiry job settles: available points past expiry, pending points past their window."""
    return {
        "$or": [
            {"state": AVAILABLE, "remaining": {"$gt": 0}, "expiresAt": {"$ne": None, "$lte": now}},
            {"state": PENDING, "availableAt": {"$lte": now}},
        ]
    }


async def members_with_due_lots(db: Database, now: datetime, *, batch_size: int = 500) -> AsyncIterator[str]:
    """Each member with a due lot once, in id order, streamed from a cursor.

    An annual clearing makes every member due at the same instant; unlike ``distinct``
    (one reply document, 16 MB at most) the grouped cursor returns any number of ids in
    batches, and the group spills to disk instead of failing on memory.
    """
    pipeline: list[Document] = [{"$match": due_query(now)}, {"$group": {"_id": "$memberId"}}, {"$sort": {"_id": 1}}]
    cursor = await db.lots.aggregate(pipeline, allowDiskUse=True, batchSize=batch_size)
    async with cursor:
        async for row in cursor:
            yield row["_id"]


async def expiring_lots(db: Database, member_id: str, now: datetime, days: int) -> list[Document]:
    """Lots of one member still holding points that expire within ``days``, soonest first."""
    until = now + timedelta(days=days)
    cursor = db.lots.find(
        {"memberId": member_id, "remaining": {"$gt": 0}, "expiresAt": {"$gt": now, "$lte": until}},
        {"remaining": 1, "expiresAt": 1},
    ).sort("expiresAt", 1)
    return await cursor.to_list()
