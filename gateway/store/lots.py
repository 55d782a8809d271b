"""Lots repository (``lots``): points earned together, spent and expired together.

Written only by the ledger (gateway/ledger/posting.py), inside its transaction: ``session``
is that transaction's session. Each function is one round trip (a cursor read in one batch).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument, UpdateOne

from gateway.store.mongo import Database, Document, insert_all

LOTS = "lots"
PENDING = "PENDING"
AVAILABLE = "AVAILABLE"


async def insert(db: Database, lot: Document, session: Any = None) -> None:
    await db[LOTS].insert_one(lot, session=session)


async def insert_lots(db: Database, lots: list[Document], session: Any = None) -> None:
    await insert_all(db[LOTS], lots, session)


async def by_id(db: Database, lot_ids: list[Any], session: Any = None) -> dict[Any, Document]:
    return {lot["_id"]: lot async for lot in db[LOTS].find({"_id": {"$in": lot_ids}}, session=session)}


async def with_points(
    db: Database, member_id: str, *, state: str | None = None, lot_ids: list[Any] | None = None, session: Any = None
) -> list[Document]:
    """The member's lots that still hold points, of one ``state`` and among ``lot_ids`` if given."""
    query: Document = {"memberId": member_id, "remaining": {"$gt": 0}}
    if lot_ids is not None:
        query["_id"] = {"$in": lot_ids}
    if state is not None:
        query["state"] = state
    return [lot async for lot in db[LOTS].find(query, session=session)]


async def take_from_soonest(
    db: Database, member_id: str, points: int, *, state: str | None = None, session: Any = None
) -> Document | None:
    """Take up to ``points`` from the member's soonest-expiring lot (of ``state``) that holds points
    and expires, in one round trip; returns that lot as it was before (None: no such lot). Ties go
    to the oldest lot, as ``gateway.domain.ledger_rules.allocate`` orders them."""
    query: Document = {"memberId": member_id, "remaining": {"$gt": 0}, "expiresAt": {"$ne": None}}
    if state is not None:
        query["state"] = state
    taken = {"$min": ["$remaining", points]}
    return await db[LOTS].find_one_and_update(
        query,
        [{"$set": {"remaining": {"$subtract": ["$remaining", taken]}}}],
        sort=[("expiresAt", 1), ("createdAt", 1), ("_id", 1)],
        projection={"remaining": 1},
        return_document=ReturnDocument.BEFORE,
        session=session,
    )


async def take(db: Database, takes: list[tuple[Any, int]], session: Any = None) -> None:
    """Take ``points`` out of each ``(lot_id, points)``: every lot in one round trip."""
    if takes:
        await db[LOTS].bulk_write(
            [UpdateOne({"_id": lot_id}, {"$inc": {"remaining": -points}}) for lot_id, points in takes],
            session=session,
        )


async def add_remaining(db: Database, lot_id: Any, points: int, session: Any = None) -> None:
    """Put points back into a lot (positive) or take them out (negative)."""
    await db[LOTS].update_one({"_id": lot_id}, {"$inc": {"remaining": points}}, session=session)


async def pending_due(db: Database, member_id: str, now: datetime, session: Any = None) -> AsyncIterator[Document]:
    """The member's pending lots whose return window closed by ``now``."""
    async for lot in db[LOTS].find(
        {"memberId": member_id, "state": PENDING, "availableAt": {"$lte": now}}, session=session
    ):
        yield lot


async def make_available(db: Database, lot_id: Any, session: Any = None) -> None:
    await db[LOTS].update_one({"_id": lot_id}, {"$set": {"state": AVAILABLE}}, session=session)


async def expiring_due(db: Database, member_id: str, now: datetime, session: Any = None) -> AsyncIterator[Document]:
    """The member's available lots past their expiry that still hold points."""
    async for lot in db[LOTS].find(
        {
            "memberId": member_id,
            "state": AVAILABLE,
            "remaining": {"$gt": 0},
            "expiresAt": {"$ne": None, "$lte": now},
        },
        session=session,
    ):
        yield lot


async def expire(db: Database, lot_id: Any, points: int, session: Any = None) -> None:
    """The lot's last ``points`` expire."""
    await db[LOTS].update_one(
        {"_id": lot_id, "remaining": points}, {"$set": {"remaining": 0, "expired": points}}, session=session
    )


async def next_due(db: Database, member_id: str, session: Any = None) -> datetime | None:
    """The earliest release (pending lot) or expiry (available lot with points) ahead; None if nothing."""
    pipeline: list[Document] = [
        {
            "$match": {
                "memberId": member_id,
                "$or": [
                    {"state": PENDING},
                    {"state": AVAILABLE, "remaining": {"$gt": 0}, "expiresAt": {"$ne": None}},
                ],
            }
        },
        {
            "$group": {
                "_id": None,
                "at": {
                    "$min": {
                        "$cond": [
                            {"$eq": ["$state", PENDING]},
                            {"$min": ["$availableAt", "$expiresAt"]},
                            "$expiresAt",
                        ]
                    }
                },
            }
        },
    ]
    rows = await (await db[LOTS].aggregate(pipeline, session=session)).to_list()
    return rows[0]["at"] if rows and rows[0]["at"] is not None else None


async def of_member(db: Database, member_id: str) -> AsyncIterator[Document]:
    """Every lot of one member (state, remaining and due instants only), for the audit."""
    projection = {"state": 1, "remaining": 1, "availableAt": 1, "expiresAt": 1}
    async for lot in db[LOTS].find({"memberId": member_id}, projection):
        yield lot


async def ids_of(db: Database, member_id: str, session: Any = None) -> list[Any]:
    """Every lot of the member, spent ones included (a spend's restore finds its lots by id)."""
    return [lot["_id"] async for lot in db[LOTS].find({"memberId": member_id}, {"_id": 1}, session=session)]


async def reassign(db: Database, lot_ids: list[Any], member_id: str, session: Any = None) -> None:
    """The lots now belong to ``member_id`` (an account merge or its undoing)."""
    if lot_ids:
        await db[LOTS].update_many({"_id": {"$in": lot_ids}}, {"$set": {"memberId": member_id}}, session=session)
