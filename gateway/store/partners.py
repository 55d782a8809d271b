"""Partners repository: every query and write of the partner area.

Collections: ``partners`` (configuration and credentials), ``partner_links`` (member
consent, ``_id`` ``<partnerId>:<memberId>``), ``partner_link_codes`` (the members'
outstanding one-time link codes, hashed), ``partner_link_events`` (the link history),
``partner_operations`` (``_id`` ``<partnerId>:<eventId>``), ``partner_daily`` (usage
while limits are set) and ``partner_dead_letters`` (Kafka dead letters sent). The
statement's sums over partner-sourced ledger entries are here too.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from gateway.store.mongo import Database, Document, insert_all
from gateway.store.program import Along

PARTNERS = "partners"
LINKS = "partner_links"
LINK_CODES = "partner_link_codes"
LINK_EVENTS = "partner_link_events"
OPERATIONS = "partner_operations"
DAILY = "partner_daily"
DEAD_LETTERS = "partner_dead_letters"


class RefTaken(Exception):
    """The partner's customer ref is already linked to another member."""


def link_id(partner_id: str, member_id: str) -> str:
    return f"{partner_id}:{member_id}"


def operation_id(partner_id: str, event_id: str) -> str:
    return f"{partner_id}:{event_id}"


def is_operation_race(exc: DuplicateKeyError) -> bool:
    """The same partner event inserted twice concurrently (its operation ``_id`` collided)."""
    return OPERATIONS in str(exc)


# --- partners ---------------------------------------------------------------------


async def find_partner(db: Database, partner_id: str, session: Any = None) -> Document | None:
    return await db[PARTNERS].find_one({"_id": partner_id}, session=session)


async def partner_exists(db: Database, partner_id: str) -> bool:
    return await db[PARTNERS].count_documents({"_id": partner_id}, limit=1) > 0


async def find_partner_by_key_hash(db: Database, key_hash: str) -> Document | None:
    """The whole partner: authentication hands it on, so an operation need not read it again."""
    return await db[PARTNERS].find_one({"apiKeyHash": key_hash})


async def all_partners(db: Database) -> list[Document]:
    return await db[PARTNERS].find({}).sort("_id", 1).to_list()


async def insert_partner(db: Database, doc: Document, session: Any = None) -> bool:
    """False when a partner with this id exists."""
    try:
        await db[PARTNERS].insert_one(doc, session=session)
    except DuplicateKeyError:
        return False
    return True


async def update_partner(db: Database, partner_id: str, fields: Document, session: Any = None) -> Document | None:
    """Set ``fields``; the partner after, or None when there is none."""
    return await db[PARTNERS].find_one_and_update(
        {"_id": partner_id}, {"$set": fields}, return_document=ReturnDocument.AFTER, session=session
    )


async def remember_legacy_rate(db: Database, partner_id: str) -> None:
    """Before a partner's first settlement-rate change, keep the rate its unrecorded operations were made at."""
    await db[PARTNERS].update_one(
        {"_id": partner_id, "legacyMilliFenPerPoint": {"$exists": False}},
        [{"$set": {"legacyMilliFenPerPoint": {"$ifNull": ["$settlementMilliFenPerPoint", 0]}}}],
    )


# --- links ------------------------------------------------------------------------


async def find_link(db: Database, partner_id: str, member_id: str, session: Any = None) -> Document | None:
    return await db[LINKS].find_one({"_id": link_id(partner_id, member_id)}, session=session)


async def links_of_member(db: Database, member_id: str) -> list[Document]:
    return await db[LINKS].find({"memberId": member_id}).sort("partnerId", 1).to_list()


def _links_matching_query(partner_id: str, member_ref: str) -> Document:
    return {"partnerId": partner_id, "$or": [{"partnerMemberRef": member_ref}, {"memberId": member_ref}]}


async def links_matching(db: Database, partner_id: str, member_ref: str, session: Any = None) -> list[Document]:
    """This partner's links whose customer ref or coalition member id is ``member_ref``."""
    return await db[LINKS].find(_links_matching_query(partner_id, member_ref), session=session).to_list()


def links_matching_along(partner_id: str, member_ref: str) -> Along:
    """``links_matching`` as a read along with a transaction's program read."""
    return Along(LINKS, _links_matching_query(partner_id, member_ref))


async def save_link(db: Database, doc: Document, session: Any = None) -> None:
    """Create or replace a member's link to a partner; RefTaken when the ref is another member's."""
    try:
        await db[LINKS].replace_one({"_id": doc["_id"]}, doc, upsert=True, session=session)
    except DuplicateKeyError:
        raise RefTaken from None


async def delete_link(db: Database, partner_id: str, member_id: str, session: Any = None) -> Document | None:
    """Remove the link; the removed link, or None when there was none."""
    return await db[LINKS].find_one_and_delete({"_id": link_id(partner_id, member_id)}, session=session)


async def save_link_code(db: Database, doc: Document) -> None:
    """The member's one outstanding code for this partner (``_id`` is the link id): a new one replaces it."""
    await db[LINK_CODES].replace_one({"_id": doc["_id"]}, doc, upsert=True)


async def take_link_code(
    db: Database, code_hash: str, partner_id: str, now: datetime, session: Any = None
) -> Document | None:
    """Use up a live code of this partner; None when there is no such code (unknown, expired, used, another's)."""
    return await db[LINK_CODES].find_one_and_delete(
        {"codeHash": code_hash, "partnerId": partner_id, "expiresAt": {"$gt": now}}, session=session
    )


async def insert_link_event(db: Database, event: Document, session: Any = None) -> None:
    await db[LINK_EVENTS].insert_one(event, session=session)


async def link_events(db: Database, *, member_id: str | None, partner_id: str | None, limit: int) -> list[Document]:
    """The link history, newest first."""
    query: Document = {}
    if member_id is not None:
        query["memberId"] = member_id
    if partner_id is not None:
        query["partnerId"] = partner_id
    return await db[LINK_EVENTS].find(query).sort([("at", -1), ("_id", -1)]).limit(limit).to_list()


# --- operations -------------------------------------------------------------------


async def find_operation(db: Database, partner_id: str, event_id: str, session: Any = None) -> Document | None:
    return await db[OPERATIONS].find_one({"_id": operation_id(partner_id, event_id)}, session=session)


async def insert_operations(db: Database, ops: list[Document], session: Any = None) -> None:
    """One round trip; the same event inserted twice raises DuplicateKeyError (``is_operation_race``)."""
    await insert_all(db[OPERATIONS], ops, session)


async def mark_reversed(db: Database, op_id: str, reversal_event_id: str, session: Any = None) -> bool:
    """Mark an operation reversed by ``reversal_event_id``; False when it already was."""
    marked = await db[OPERATIONS].update_one(
        {"_id": op_id, "reversedBy": None}, {"$set": {"reversedBy": reversal_event_id}}, session=session
    )
    return marked.modified_count == 1


async def operations_between(db: Database, partner_id: str, start: datetime, end: datetime) -> list[Document]:
    return await db[OPERATIONS].find({"partnerId": partner_id, "createdAt": {"$gte": start, "$lt": end}}).to_list()


async def operations_since(db: Database, partner_id: str, since: datetime) -> list[Document]:
    return await db[OPERATIONS].find({"partnerId": partner_id, "createdAt": {"$gte": since}}).to_list()


async def operations_page(
    db: Database, partner_id: str, start: datetime, end: datetime, *, first: int, after: tuple[datetime, str] | None
) -> list[Document]:
    """Up to ``first + 1`` operations of [start, end), oldest first, after the (createdAt, _id) position."""
    query: Document = {"partnerId": partner_id, "createdAt": {"$gte": start, "$lt": end}}
    if after is not None:
        at, op_id = after
        query["$or"] = [{"createdAt": {"$gt": at}}, {"createdAt": at, "_id": {"$gt": op_id}}]
    return await db[OPERATIONS].find(query).sort([("createdAt", 1), ("_id", 1)]).limit(first + 1).to_list()


# --- daily usage ------------------------------------------------------------------


async def count_daily(db: Database, partner_id: str, day: str, operation: str, points: int, session: Any = None) -> int:
    """Add ``points`` to the day's ``operation`` usage; the usage after."""
    counter = await db[DAILY].find_one_and_update(
        {"_id": f"{partner_id}:{day}"},
        {"$inc": {operation: points}, "$setOnInsert": {"partnerId": partner_id, "day": day}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    assert counter is not None  # an upsert returning the document after always has one
    return int(counter[operation])


async def seed_daily(db: Database, partner_id: str, day: str, used: dict[str, int]) -> None:
    """Raise the day's counters to at least ``used`` (a limit set mid-day counts the earlier usage)."""
    await db[DAILY].update_one(
        {"_id": f"{partner_id}:{day}"},
        {"$max": used, "$setOnInsert": {"partnerId": partner_id, "day": day}},
        upsert=True,
    )


# --- settlement -------------------------------------------------------------------


async def ledger_sums(
    db: Database, partner_id: str, start: datetime, end: datetime, *, legacy_rate: int
) -> list[Document]:
    """Sums of this partner's ledger entries in [start, end) by (kind, reversed kind, recorded rate).

    Entries without a recorded rate (made before rates were recorded) group under ``legacy_rate``.
    """
    pipeline: list[Document] = [
        {
            "$match": {
                "source.partnerId": partner_id,
                "source.type": "PARTNER",
                "createdAt": {"$gte": start, "$lt": end},
            }
        },
        {
            "$group": {
                "_id": {
                    "kind": "$kind",
                    "reverses": "$reversesKind",
                    "rate": {"$ifNull": ["$settlementMilliFenPerPoint", legacy_rate]},
                },
                "earned": {"$sum": "$delta.lifetimeEarned"},
                "spent": {"$sum": "$delta.spent"},
                "fee": {"$sum": {"$ifNull": ["$fee", 0]}},
            }
        },
    ]
    return [row async for row in await db.ledger.aggregate(pipeline)]


# --- Kafka dead letters -----------------------------------------------------------


async def dead_letter_sent(db: Database, letter_id: str) -> bool:
    return await db[DEAD_LETTERS].count_documents({"_id": letter_id}, limit=1) > 0


async def remember_dead_letters(db: Database, docs: list[Document]) -> None:
    """Record sent dead letters; ones a concurrent re-read already recorded are skipped."""
    with suppress(BulkWriteError):
        await db[DEAD_LETTERS].insert_many(docs, ordered=False)
