"""Members repository: member documents (``members``), their tier history (``tier_changes``)
and growth events (``growth_events``).

Balances, ``ledgerSeq``, ``debt`` and ``nextDueAt`` are written only by the ledger
(``gateway.ledger``); this module owns everything else about a member.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from gateway.domain.member_search import SORT_FIELD, MemberFilter, MemberOrder, Position, nest, search_keys
from gateway.store.mongo import Database, Document

MEMBERS = "members"
TIER_CHANGES = "tier_changes"
GROWTH_EVENTS = "growth_events"


class DuplicateMember(Exception):
    """The id or the email is taken; ``field`` says which."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def _duplicate(exc: DuplicateKeyError) -> DuplicateMember:
    return DuplicateMember("email" if "email" in str(exc) else "id")


async def find(db: Database, member_id: str, session: Any = None) -> Document | None:
    return await db[MEMBERS].find_one({"_id": member_id}, session=session)


async def find_many(db: Database, member_ids: list[str]) -> dict[str, Document]:
    return {doc["_id"]: doc async for doc in db[MEMBERS].find({"_id": {"$in": list(set(member_ids))}})}


async def exists(db: Database, member_id: str, session: Any = None) -> bool:
    return await db[MEMBERS].count_documents({"_id": member_id}, limit=1, session=session) > 0


async def insert(db: Database, doc: Document, session: Any = None) -> None:
    """Raises ``DuplicateMember`` when the id or email is taken."""
    doc.setdefault("search", nest(search_keys(doc)).get("search", {}))
    try:
        await db[MEMBERS].insert_one(doc, session=session)
    except DuplicateKeyError as exc:
        raise _duplicate(exc) from None


async def set_fields(
    db: Database, member_id: str, fields: Document, *, only_if: Document | None = None, session: Any = None
) -> Document | None:
    """Set profile/membership fields; None when the member is missing or ``only_if`` does not hold.

    Raises ``DuplicateMember`` when a new email is taken.
    """
    try:
        return await db[MEMBERS].find_one_and_update(
            {"_id": member_id, **(only_if or {})},
            {"$set": {**fields, **search_keys(fields)}},
            return_document=ReturnDocument.AFTER,
            session=session,
        )
    except DuplicateKeyError as exc:
        raise _duplicate(exc) from None


async def ids(db: Database, *, batch_size: int = 1000) -> AsyncIterator[str]:
    """Every member id, streamed."""
    async for doc in db[MEMBERS].find({}, {"_id": 1}, batch_size=batch_size):
        yield doc["_id"]


async def ids_outside_tiers(db: Database, codes: list[str], *, batch_size: int = 1000) -> AsyncIterator[str]:
    """Members whose tier code is none of ``codes`` (left behind by a tier removal), streamed."""
    async for doc in db[MEMBERS].find({"tier": {"$nin": codes}}, {"_id": 1}, batch_size=batch_size):
        yield doc["_id"]


async def count_in_tier(db: Database, code: str, session: Any = None) -> int:
    return await db[MEMBERS].count_documents({"tier": code}, session=session)


async def move_tier(
    db: Database, code: str, target: str, *, direction: str, reason: str, now: datetime, session: Any = None
) -> int:
    """Everyone holding tier ``code`` moves to ``target``, each with a tier-change record; returns how many."""
    moved = 0
    batch: list[Document] = []
    async for member in db[MEMBERS].find({"tier": code}, {"_id": 1}, session=session):
        batch.append(
            {
                "memberId": member["_id"],
                "fromTier": code,
                "toTier": target,
                "direction": direction,
                "reason": reason,
                "at": now,
            }
        )
        if len(batch) >= 1000:
            await db[TIER_CHANGES].insert_many(batch, session=session)
            moved += len(batch)
            batch = []
    if batch:
        await db[TIER_CHANGES].insert_many(batch, session=session)
        moved += len(batch)
    await db[MEMBERS].update_many({"tier": code}, {"$set": {"tier": target, "tierSince": now}}, session=session)
    return moved


async def set_tier(db: Database, member_id: str, change: Document, session: Any = None) -> None:
    """Move a member to ``change["toTier"]`` and record the change (both in the caller's transaction)."""
    await db[MEMBERS].update_one(
        {"_id": member_id}, {"$set": {"tier": change["toTier"], "tierSince": change["at"]}}, session=session
    )
    await db[TIER_CHANGES].insert_one({"memberId": member_id, **change}, session=session)


async def add_growth(db: Database, member_id: str, event: Document, session: Any = None) -> None:
    """Raise the member's growth value by ``event["points"]`` and keep the event (for windows)."""
    await db[MEMBERS].update_one({"_id": member_id}, {"$inc": {"growth": event["points"]}}, session=session)
    await db[GROWTH_EVENTS].insert_one({"memberId": member_id, **event}, session=session)


# --- search (issue 14 §1) ------------------------------------------------------------------------


def filter_query(member_filter: MemberFilter) -> Document:
    """The MongoDB query of a member filter; every criterion can use an index (INDEXES["members"])."""
    query: Document = {}
    f = member_filter
    if f.name is not None:
        query["search.name"] = {"$regex": "^" + re.escape(f.name)}
    if f.phone is not None:
        query["search.phone"] = {"$regex": "^" + re.escape(f.phone[::-1])}
    if f.email is not None:
        # $type keeps the query inside the partial unique index on email
        query["email"] = {"$type": "string", "$regex": "^" + re.escape(f.email)}
    if f.tiers:
        query["tier"] = {"$in": list(f.tiers)}
    if f.segments:
        query["rfm.segment"] = {"$in": [str(s) for s in f.segments]}
    joined: Document = {}
    if f.joined_from is not None:
        joined["$gte"] = f.joined_from
    if f.joined_to is not None:
        joined["$lt"] = f.joined_to
    if joined:
        query["registeredAt"] = joined
    spend: Document = {}
    if f.spend_min is not None:
        spend["$gte"] = f.spend_min
    if f.spend_max is not None:
        spend["$lte"] = f.spend_max
    if spend:
        query["lifetimeSpend"] = spend
    return query


def _after(position: Position) -> Document:
    """Members strictly after ``position`` in its (descending) order."""
    field = SORT_FIELD[position.order]
    return {
        "$or": [
            {field: {"$lt": position.value}},
            {field: position.value, "_id": {"$lt": position.member_id}},
        ]
    }


async def search(
    db: Database,
    member_filter: MemberFilter,
    *,
    order: MemberOrder,
    after: Position | None,
    limit: int,
    projection: Document | None = None,
) -> list[Document]:
    """One page of the members matching ``member_filter``, in ``order`` (ties by id, descending)."""
    query = filter_query(member_filter)
    if after is not None:
        query = {"$and": [query, _after(after)]} if query else _after(after)
    field = SORT_FIELD[order]
    cursor = db[MEMBERS].find(query, projection).sort([(field, -1), ("_id", -1)]).limit(limit)
    return await cursor.to_list()


async def count_matching(db: Database, member_filter: MemberFilter, *, limit: int | None = None) -> int:
    """How many members match (up to ``limit`` when given: a count that stops early)."""
    options: Document = {"limit": limit} if limit else {}
    return await db[MEMBERS].count_documents(filter_query(member_filter), **options)


async def explain_search(db: Database, member_filter: MemberFilter, order: MemberOrder) -> Document:
    """The query planner's winning plan for a first page (tests prove each filter uses an index)."""
    field = SORT_FIELD[order]
    cursor = db[MEMBERS].find(filter_query(member_filter)).sort([(field, -1), ("_id", -1)]).limit(21)
    explained: Document = await cursor.explain()
    return explained["queryPlanner"]["winningPlan"]


async def backfill_search_keys(db: Database, *, batch_size: int = 500) -> int:
    """Give members written before the search keys existed their ``search`` fields; returns how many.

    Idempotent; run at every start (``gateway.runtime.prepare``), where it costs one scan of the
    members' ids once every member has its keys."""
    done = 0
    batch: list[UpdateOne] = []
    async for doc in db[MEMBERS].find({"search": {"$exists": False}}, {"displayName": 1, "phone": 1}):
        keys = search_keys({"displayName": doc.get("displayName") or "", "phone": doc.get("phone")})
        batch.append(UpdateOne({"_id": doc["_id"], "search": {"$exists": False}}, {"$set": keys}))
        if len(batch) >= batch_size:
            done += (await db[MEMBERS].bulk_write(batch, ordered=False)).modified_count
            batch = []
    if batch:
        done += (await db[MEMBERS].bulk_write(batch, ordered=False)).modified_count
    return done


async def set_check_in(db: Database, member_id: str, last_day: str, streak: int, session: Any = None) -> None:
    """The member's check-in state: the last local day checked in and the streak it ended."""
    await db[MEMBERS].update_one(
        {"_id": member_id}, {"$set": {"checkIn": {"lastDay": last_day, "streak": streak}}}, session=session
    )


async def set_status(
    db: Database, member_id: str, status: str, fields: Document, *, unset: list[str] | None = None, session: Any = None
) -> None:
    """Write the account status (gateway/domain/member_status.py) with its details."""
    update: Document = {"$set": {"status": status, **fields}}
    if unset:
        update["$unset"] = {name: "" for name in unset}
    await db[MEMBERS].update_one({"_id": member_id}, update, session=session)


async def erase_profile(db: Database, member_id: str, fields: Document, session: Any = None) -> None:
    """Overwrite the personal fields of an erased member and drop its segment."""
    await db[MEMBERS].update_one({"_id": member_id}, {"$set": fields, "$unset": {"rfm": ""}}, session=session)


async def count_purchase(db: Database, member_id: str, amount: int, paid_at: datetime, session: Any = None) -> None:
    """A recorded purchase: lifetime spend and purchase count up, the first purchase's instant kept."""
    await db[MEMBERS].update_one(
        {"_id": member_id},
        {"$inc": {"lifetimeSpend": amount, "purchaseCount": 1}, "$min": {"firstPurchaseAt": paid_at}},
        session=session,
    )


async def add_lifetime_spend(db: Database, member_id: str, amount: int, session: Any = None) -> None:
    """Move lifetime spend by ``amount`` (negative: a refund)."""
    await db[MEMBERS].update_one({"_id": member_id}, {"$inc": {"lifetimeSpend": amount}}, session=session)


async def record_tier_change(db: Database, member_id: str, change: Document, session: Any = None) -> None:
    """Keep a tier change in the member's history (the caller sets the tier itself)."""
    await db[TIER_CHANGES].insert_one({"memberId": member_id, **change}, session=session)
