"""Coupon code pools: ``coupon_codes`` (one document per code) and ``coupon_batches`` (one per
import or generation, its idempotency record).

A code document never holds the code in clear: ``sealed`` is the code encrypted (AES-GCM,
bound to the document id) and ``codeHash`` a keyed hash that is unique across all pools, so a
code is found by value without being readable from the database, a backup or a log. Every
write that moves a code in or out of AVAILABLE also moves the gift's ``stock`` by the same
amount, in the same transaction (``gateway.features.coupons``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument

from gateway.domain.coupons import CodeStatus
from gateway.store.mongo import Database, Document

CODES = "coupon_codes"
BATCHES = "coupon_batches"
GIFTS = "gifts"


async def existing_hashes(db: Database, hashes: Sequence[str], session: Any = None) -> dict[str, str]:
    """codeHash → giftId for the hashes already stored (in any pool)."""
    cursor = db[CODES].find({"codeHash": {"$in": list(hashes)}}, {"codeHash": 1, "giftId": 1}, session=session)
    return {doc["codeHash"]: doc["giftId"] async for doc in cursor}


async def insert_codes(db: Database, docs: list[Document], session: Any) -> None:
    if docs:
        await db[CODES].insert_many(docs, ordered=True, session=session)


async def add_stock(db: Database, gift_id: str, quantity: int, now: datetime, session: Any) -> Document | None:
    """Move a gift's stock with its pool (``quantity`` may be negative); None if no such gift."""
    return await db[GIFTS].find_one_and_update(
        {"_id": gift_id},
        {"$inc": {"stock": quantity}, "$set": {"updatedAt": now}},
        return_document=ReturnDocument.AFTER,
        session=session,
    )


async def set_cancel_window(db: Database, gift_id: str, minutes: int, now: datetime, session: Any) -> None:
    await db[GIFTS].update_one(
        {"_id": gift_id}, {"$set": {"coupon.cancelWindowMinutes": minutes, "updatedAt": now}}, session=session
    )


async def take_available(
    db: Database, gift_id: str, now: datetime, assignment: Document, session: Any
) -> Document | None:
    """Assign the pool's soonest-expiring code still good at ``now``; None when none is left."""
    return await db[CODES].find_one_and_update(
        {"giftId": gift_id, "status": str(CodeStatus.AVAILABLE), "sortExpiry": {"$gt": now}},
        {"$set": {"status": str(CodeStatus.ASSIGNED), **assignment}},
        sort=[("sortExpiry", ASCENDING), ("_id", ASCENDING)],
        return_document=ReturnDocument.AFTER,
        session=session,
    )


async def codes_of_order(db: Database, order_id: str, session: Any = None) -> list[Document]:
    return await db[CODES].find({"orderId": order_id}, session=session).sort("_id", ASCENDING).to_list()


async def release(db: Database, code_id: str, to_status: CodeStatus, now: datetime, session: Any) -> bool:
    """An ASSIGNED code of a cancelled order back to the pool (or to EXPIRED)."""
    changed = await db[CODES].update_one(
        {"_id": code_id, "status": str(CodeStatus.ASSIGNED)},
        {
            "$set": {"status": str(to_status), "returnedAt": now},
            "$unset": {"orderId": "", "memberId": "", "assignedAt": ""},
            "$push": {"history": {"event": "returned", "at": now}},
        },
        session=session,
    )
    return changed.modified_count == 1


async def codes_of_member(db: Database, member_id: str, session: Any = None) -> list[Document]:
    """Every code a member holds now (assigned or used), oldest first: their coupon wallet."""
    cursor = db[CODES].find({"memberId": member_id}, session=session)
    return await cursor.sort([("assignedAt", ASCENDING), ("_id", ASCENDING)]).to_list()


async def find_by_hash(db: Database, code_hash: str, session: Any = None) -> Document | None:
    return await db[CODES].find_one({"codeHash": code_hash}, session=session)


async def mark_used(
    db: Database, code_id: str, member_id: str, fields: Document, session: Any = None
) -> Document | None:
    """ASSIGNED (to ``member_id``) → USED; None if the code is no longer so."""
    return await db[CODES].find_one_and_update(
        {"_id": code_id, "status": str(CodeStatus.ASSIGNED), "memberId": member_id},
        {"$set": {"status": str(CodeStatus.USED), **fields}},
        return_document=ReturnDocument.AFTER,
        session=session,
    )


async def void_available(db: Database, gift_id: str, hashes: Sequence[str], fields: Document, session: Any) -> int:
    """AVAILABLE codes of this pool among ``hashes`` → VOID; the number voided."""
    changed = await db[CODES].update_many(
        {"giftId": gift_id, "codeHash": {"$in": list(hashes)}, "status": str(CodeStatus.AVAILABLE)},
        {"$set": {"status": str(CodeStatus.VOID), **fields}},
        session=session,
    )
    return changed.modified_count


async def statuses_by_hash(db: Database, gift_id: str, hashes: Sequence[str], session: Any = None) -> dict[str, str]:
    cursor = db[CODES].find(
        {"giftId": gift_id, "codeHash": {"$in": list(hashes)}}, {"codeHash": 1, "status": 1}, session=session
    )
    return {doc["codeHash"]: doc["status"] async for doc in cursor}


async def gifts_with_due_codes(db: Database, now: datetime) -> list[str]:
    """Gifts whose pool holds AVAILABLE codes past their expiry (the sweep's work list)."""
    return sorted(
        await db[CODES].distinct("giftId", {"status": str(CodeStatus.AVAILABLE), "sortExpiry": {"$lte": now}})
    )


async def expire_due(db: Database, gift_id: str, now: datetime, session: Any) -> int:
    """AVAILABLE codes of one pool past their expiry → EXPIRED; the number expired."""
    changed = await db[CODES].update_many(
        {"giftId": gift_id, "status": str(CodeStatus.AVAILABLE), "sortExpiry": {"$lte": now}},
        {"$set": {"status": str(CodeStatus.EXPIRED), "expiredAt": now}},
        session=session,
    )
    return changed.modified_count


async def grouped_counts(db: Database, gift_id: str, now: datetime) -> list[Document]:
    """One row per (batch, status, past expiry): the pool status in one aggregation."""
    pipeline: list[Document] = [
        {"$match": {"giftId": gift_id}},
        {
            "$group": {
                "_id": {"batch": "$batchId", "status": "$status", "past": {"$lte": ["$sortExpiry", now]}},
                "count": {"$sum": 1},
                "nextExpiry": {"$min": "$expiresAt"},
            }
        },
    ]
    return await (await db[CODES].aggregate(pipeline)).to_list()


async def next_available_expiry(db: Database, gift_id: str, now: datetime) -> datetime | None:
    doc = await db[CODES].find_one(
        {
            "giftId": gift_id,
            "status": str(CodeStatus.AVAILABLE),
            "sortExpiry": {"$gt": now},
            "expiresAt": {"$ne": None},
        },
        {"expiresAt": 1},
        sort=[("sortExpiry", ASCENDING)],
    )
    return None if doc is None else doc["expiresAt"]


async def delete_pool(db: Database, gift_id: str, session: Any) -> None:
    """A never-redeemed virtual gift is deleted: its codes and batches go with it."""
    await db[CODES].delete_many({"giftId": gift_id}, session=session)
    await db[BATCHES].delete_many({"giftId": gift_id}, session=session)


# -- batches -------------------------------------------------------------------------------------


async def find_batch(db: Database, batch_id: str, session: Any = None) -> Document | None:
    return await db[BATCHES].find_one({"_id": batch_id}, session=session)


async def insert_batch(db: Database, batch: Document, session: Any) -> None:
    await db[BATCHES].insert_one(batch, session=session)


async def add_to_batch(db: Database, batch_id: str, counts: Document, now: datetime, session: Any) -> None:
    """Add an import chunk's counts to its batch (created by the first chunk)."""
    await db[BATCHES].update_one({"_id": batch_id}, {"$inc": counts, "$set": {"updatedAt": now}}, session=session)


async def batches_of(db: Database, gift_id: str) -> list[Document]:
    return await db[BATCHES].find({"giftId": gift_id}).sort("createdAt", ASCENDING).to_list()
