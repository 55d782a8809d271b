"""Gifts repository: the points-mall catalog documents (``gifts``).

Stock only moves by ``$inc``; admin edits are compare-and-set on ``version``
(see ``gateway.features.catalog``). Redemptions take stock inside their
transaction through ``take_stock`` / ``return_stock``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument

from gateway.store.mongo import Database, Document

GIFTS = "gifts"


def offered_query(now: datetime) -> Document:
    """Gifts on sale at ``now``: listed, inside the window, in stock."""
    return {
        "listed": True,
        "stock": {"$gt": 0},
        "$and": [
            {"$or": [{"listFrom": None}, {"listFrom": {"$lte": now}}]},
            {"$or": [{"listUntil": None}, {"listUntil": {"$gt": now}}]},
        ],
    }


def visible_query(now: datetime) -> Document:
    """Gifts a storefront may show: listed and not ended (``domain.catalog.storefront_visible``)."""
    return {"listed": True, "$or": [{"listUntil": None}, {"listUntil": {"$gt": now}}]}


def _at_version(gift_id: str, version: int) -> Document:
    if version == 0:  # stored before gifts were versioned
        return {"_id": gift_id, "$or": [{"version": 0}, {"version": {"$exists": False}}]}
    return {"_id": gift_id, "version": version}


async def find(db: Database, gift_id: str, session: Any = None) -> Document | None:
    return await db[GIFTS].find_one({"_id": gift_id}, session=session)


async def find_many(db: Database, gift_ids: list[str]) -> dict[str, Document]:
    return {d["_id"]: d async for d in db[GIFTS].find({"_id": {"$in": list(set(gift_ids))}})}


async def ids_starting(db: Database, prefix: str) -> set[str]:
    """The ids of the gifts whose id starts with ``prefix``."""
    return {d["_id"] async for d in db[GIFTS].find({"_id": {"$regex": "^" + re.escape(prefix)}}, {"_id": 1})}


async def insert(db: Database, doc: Document, session: Any = None) -> None:
    await db[GIFTS].insert_one(doc, session=session)


async def set_at_version(
    db: Database, gift_id: str, version: int, fields: Document, now: datetime, session: Any = None
) -> Document | None:
    """Set ``fields`` and raise the version, only if the gift is still at ``version``; None if not."""
    return await db[GIFTS].find_one_and_update(
        _at_version(gift_id, version),
        {"$set": {**fields, "updatedAt": now}, "$inc": {"version": 1}},
        return_document=ReturnDocument.AFTER,
        session=session,
    )


async def set_fields(
    db: Database, gift_id: str, fields: Document, now: datetime, session: Any = None
) -> Document | None:
    """Set whole fields that no other edit merges into (the offer) and raise the version."""
    return await db[GIFTS].find_one_and_update(
        {"_id": gift_id},
        {"$set": {**fields, "updatedAt": now}, "$inc": {"version": 1}},
        return_document=ReturnDocument.AFTER,
        session=session,
    )


async def add_stock(db: Database, gift_id: str, quantity: int, now: datetime, session: Any = None) -> Document | None:
    return await db[GIFTS].find_one_and_update(
        {"_id": gift_id},
        {"$inc": {"stock": quantity}, "$set": {"updatedAt": now}},
        return_document=ReturnDocument.AFTER,
        session=session,
    )


async def take_stock(db: Database, gift_id: str, quantity: int, now: datetime, session: Any = None) -> Document | None:
    """Take ``quantity`` off the stock and count it redeemed, if that much is left: the gift as it
    was, or None (no such gift, or too little stock)."""
    return await db[GIFTS].find_one_and_update(
        {"_id": gift_id, "stock": {"$gte": quantity}},
        {"$inc": {"stock": -quantity, "redeemed": quantity}, "$set": {"updatedAt": now}},
        session=session,
    )


async def return_stock(db: Database, gift_id: str, quantity: int, now: datetime, session: Any = None) -> None:
    """A cancelled order's units go back on the shelf (they stay counted as redeemed)."""
    await db[GIFTS].update_one(
        {"_id": gift_id}, {"$inc": {"stock": quantity}, "$set": {"updatedAt": now}}, session=session
    )


async def delete_unredeemed(db: Database, gift_id: str, session: Any = None) -> bool:
    """Delete a gift nobody ever redeemed; False if it was redeemed (or does not exist)."""
    return (await db[GIFTS].delete_one({"_id": gift_id, "redeemed": 0}, session=session)).deleted_count == 1


async def page(
    db: Database,
    *,
    query: Document,
    category: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Document]:
    """Up to ``limit`` gifts matching ``query`` in creation order (ties by id) after the position."""
    if category is not None:
        query = {**query, "category": category}
    if after is not None:
        created, gift_id = after
        query = {
            "$and": [
                query,
                {"$or": [{"createdAt": {"$gt": created}}, {"createdAt": created, "_id": {"$gt": gift_id}}]},
            ]
        }
    return await db[GIFTS].find(query).sort([("createdAt", 1), ("_id", 1)]).limit(limit).to_list()


async def count_requiring_tier(db: Database, code: str, session: Any = None) -> int:
    return await db[GIFTS].count_documents({"minTier": code}, session=session)


async def move_min_tier(db: Database, code: str, target: str, now: datetime, session: Any = None) -> None:
    """Gifts requiring tier ``code`` require ``target`` instead (a tier removal)."""
    await db[GIFTS].update_many(
        {"minTier": code}, {"$set": {"minTier": target, "updatedAt": now}, "$inc": {"version": 1}}, session=session
    )
