"""Redemptions repository: points-mall orders (``redemptions``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import bson

from gateway.store.mongo import Database, Document

REDEMPTIONS = "redemptions"


async def find(db: Database, order_id: str, session: Any = None) -> Document | None:
    return await db[REDEMPTIONS].find_one({"_id": order_id}, session=session)


async def member_of(db: Database, order_id: str, session: Any = None) -> str | None:
    found = await db[REDEMPTIONS].find_one({"_id": order_id}, {"memberId": 1}, session=session)
    return None if found is None else str(found["memberId"])


async def insert(db: Database, order: Document, session: Any = None) -> None:
    await db[REDEMPTIONS].insert_one(order, session=session)


def as_stored(db: Database, order: Document) -> Document:
    """``order`` exactly as reading it back would give it (a BSON round trip in memory: times to
    the millisecond, the client's time zone handling), without reading it back."""
    return bson.decode(bson.encode(order), codec_options=db.db.codec_options)


async def transition(
    db: Database, order_id: str, from_status: str, to_status: str, fields: Document, session: Any = None
) -> bool:
    """Compare-and-set the order's status; False if it was no longer ``from_status``."""
    changed = await db[REDEMPTIONS].update_one(
        {"_id": order_id, "status": from_status}, {"$set": {"status": to_status, **fields}}, session=session
    )
    return changed.modified_count == 1


async def payment_reference_used(db: Database, reference: str, session: Any = None) -> bool:
    return await db[REDEMPTIONS].count_documents({"paymentReference": reference}, limit=1, session=session) > 0


async def page_for_member(db: Database, member_id: str, *, before: str | None, size: int) -> list[Document]:
    """Up to ``size`` orders of one member, newest first, older than the ``before`` id."""
    query: Document = {"memberId": member_id}
    if before is not None:
        query["_id"] = {"$lt": before}
    return await db[REDEMPTIONS].find(query).sort("_id", -1).limit(size).to_list()


CANCELLED = "CANCELLED"


async def orders_since(
    db: Database, *, member_ids: list[str], gift_ids: list[str], since: datetime, session: Any = None
) -> list[Document]:
    """Orders of these members for these gifts placed at or after ``since`` that count against
    limits (everything but cancelled orders): memberId, giftId, quantity, createdAt."""
    cursor = db[REDEMPTIONS].find(
        {
            "memberId": {"$in": member_ids},
            "giftId": {"$in": gift_ids},
            "status": {"$ne": CANCELLED},
            "createdAt": {"$gte": since},
        },
        {"memberId": 1, "giftId": 1, "quantity": 1, "createdAt": 1},
        session=session,
    )
    return await cursor.to_list()


async def count_unfinished(db: Database, member_id: str, statuses: list[str], session: Any = None) -> int:
    """How many of the member's orders are in one of ``statuses`` (not yet final)."""
    return await db[REDEMPTIONS].count_documents({"memberId": member_id, "status": {"$in": statuses}}, session=session)
