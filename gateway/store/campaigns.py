"""Campaigns repository: time-boxed earning boosts with a points budget (docs/campaigns.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from gateway.core.errors import BadInput
from gateway.store.mongo import Database, Document

CAMPAIGNS = "campaigns"
LEDGER = "ledger"


def object_id(campaign_id: str) -> ObjectId | None:
    try:
        return ObjectId(campaign_id)
    except (InvalidId, TypeError):
        return None


async def insert(db: Database, doc: Document, session: Any = None) -> None:
    await db[CAMPAIGNS].insert_one(doc, session=session)


async def find(db: Database, campaign_id: str, session: Any = None) -> Document | None:
    oid = object_id(campaign_id)
    if oid is None:
        return None
    return await db[CAMPAIGNS].find_one({"_id": oid}, session=session)


async def page(db: Database, *, before: str | None, size: int) -> list[Document]:
    """Up to ``size`` campaigns, newest first, older than the ``before`` position."""
    query: Document = {}
    if before is not None:
        oid = object_id(before)
        if oid is None:
            raise BadInput("after is not a valid cursor", field="after")
        query["_id"] = {"$lt": oid}
    return await db[CAMPAIGNS].find(query).sort("_id", -1).limit(size).to_list()


async def running_at(db: Database, at: datetime, session: Any = None) -> list[Document]:
    """Campaigns not cancelled whose window contains ``at`` (the budget is the caller's to judge)."""
    query = {"startsAt": {"$lte": at}, "endsAt": {"$gt": at}, "cancelledAt": None}
    return await db[CAMPAIGNS].find(query, session=session).to_list()


async def replace_spec(db: Database, campaign_id: Any, version: int, fields: Document, session: Any = None) -> bool:
    """Write new settings if the campaign is still at ``version``; False when it moved on."""
    result = await db[CAMPAIGNS].update_one(
        {"_id": campaign_id, "version": version}, {"$set": fields, "$inc": {"version": 1}}, session=session
    )
    return result.matched_count == 1


async def cancel(db: Database, campaign_id: Any, at: datetime, by: str, reason: str, session: Any = None) -> bool:
    result = await db[CAMPAIGNS].update_one(
        {"_id": campaign_id, "cancelledAt": None},
        {"$set": {"cancelledAt": at, "cancelledBy": by, "cancelReason": reason}, "$inc": {"version": 1}},
        session=session,
    )
    return result.matched_count == 1


async def spend_budget(
    db: Database, campaign_id: Any, points: int, *, seen_spent: int, exhausted_at: datetime | None, session: Any
) -> bool:
    """Add ``points`` to what the campaign gave, only if it still gave ``seen_spent`` (inside a
    transaction a concurrent spender meets a write conflict and retries; the condition makes the
    rule visible here too). False when the campaign moved on."""
    update: Document = {"$inc": {"spentPoints": points}}
    if exhausted_at is not None:
        update["$set"] = {"exhaustedAt": exhausted_at}
    result = await db[CAMPAIGNS].update_one({"_id": campaign_id, "spentPoints": seen_spent}, update, session=session)
    return result.matched_count == 1


async def member_earned(db: Database, member_id: str, campaign_ids: list[str], session: Any = None) -> dict[str, int]:
    """Points each campaign gave this member so far (refunds do not give cap room back)."""
    pipeline: list[Document] = [
        {"$match": {"memberId": member_id, "kind": "CAMPAIGN", "source.id": {"$in": campaign_ids}}},
        {"$group": {"_id": "$source.id", "points": {"$sum": "$points"}}},
    ]
    rows = await (await db[LEDGER].aggregate(pipeline, session=session)).to_list()
    return {row["_id"]: row["points"] for row in rows}


async def stats(db: Database, campaign_id: str) -> Document:
    """What a campaign gave and got back, from the ledger: points, members, orders."""
    pipeline: list[Document] = [
        {"$match": {"source.type": "CAMPAIGN", "source.id": campaign_id}},
        {
            "$group": {
                "_id": None,
                "given": {"$sum": {"$cond": [{"$eq": ["$kind", "CAMPAIGN"]}, "$points", 0]}},
                "takenBack": {"$sum": {"$cond": [{"$eq": ["$kind", "REFUND"]}, {"$multiply": ["$points", -1]}, 0]}},
                "members": {"$addToSet": {"$cond": [{"$eq": ["$kind", "CAMPAIGN"]}, "$memberId", "$$REMOVE"]}},
                "orders": {"$sum": {"$cond": [{"$eq": ["$kind", "CAMPAIGN"]}, 1, 0]}},
            }
        },
        {"$project": {"given": 1, "takenBack": 1, "orders": 1, "members": {"$size": "$members"}}},
    ]
    rows = await (await db[LEDGER].aggregate(pipeline)).to_list()
    return rows[0] if rows else {"given": 0, "takenBack": 0, "members": 0, "orders": 0}
