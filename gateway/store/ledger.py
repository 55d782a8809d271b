"""Ledger repository: the entries (``ledger``) and the ledger's own fields of a member document.

A member document carries the ledger's running state: ``balances``, ``ledgerSeq`` (the last
entry's sequence number), ``debt``, ``nextDueAt`` and ``lockVersion`` (bumped to lock the
member for a transaction). Only the ledger (gateway/ledger/) writes them and the entries,
inside its transaction (``session``). Reads of a member's history for clients are in
``ledger_history``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from gateway.store.mongo import Database, Document, insert_all

LEDGER = "ledger"
MEMBERS = "members"


async def lock_member(db: Database, member_id: str, session: Any = None) -> Document | None:
    """Write the member document first thing, so concurrent transactions on it conflict and retry."""
    return await db[MEMBERS].find_one_and_update(
        {"_id": member_id}, {"$inc": {"lockVersion": 1}}, return_document=ReturnDocument.AFTER, session=session
    )


async def lock_applying(
    db: Database,
    member_id: str,
    change: dict[str, int],
    lowest_due: datetime | None,
    need_available: int,
    session: Any = None,
) -> Document | None:
    """Lock the member and move its balances and sequence by ``change`` in ONE write, lowering
    ``nextDueAt`` to ``lowest_due``; only if it has ``need_available`` points available.

    Returns the document as it was before (None: no such member, or too few points).
    """
    query: dict[str, Any] = {"_id": member_id}
    if need_available:
        query["balances.available"] = {"$gte": need_available}
    update: dict[str, Any] = {
        "$inc": {"lockVersion": 1, "ledgerSeq": 1, **{f"balances.{k}": v for k, v in change.items() if v}}
    }
    if lowest_due is not None:
        update["$min"] = {"nextDueAt": lowest_due}
    return await db[MEMBERS].find_one_and_update(query, update, return_document=ReturnDocument.BEFORE, session=session)


async def undo_applying(
    db: Database, member_id: str, change: dict[str, int], due: datetime | None, session: Any = None
) -> None:
    """Take back what ``lock_applying`` moved (the member stays locked), restoring ``nextDueAt``."""
    await db[MEMBERS].update_one(
        {"_id": member_id},
        {
            "$inc": {"ledgerSeq": -1, **{f"balances.{k}": -v for k, v in change.items() if v}},
            "$set": {"nextDueAt": due},
        },
        session=session,
    )


async def add_debt(db: Database, member_id: str, points: int, session: Any = None) -> None:
    await db[MEMBERS].update_one({"_id": member_id}, {"$inc": {"debt": points}}, session=session)


async def set_next_due(db: Database, member_id: str, due: datetime, session: Any = None) -> None:
    await db[MEMBERS].update_one({"_id": member_id}, {"$set": {"nextDueAt": due}}, session=session)


async def append(
    db: Database, entry: Document, change: dict[str, int], next_due: datetime | None, session: Any = None
) -> None:
    """Write one entry and move its member's balances and sequence by it (two round trips)."""
    await move(db, entry["memberId"], change, 1, next_due, session=session)
    await db[LEDGER].insert_one(entry, session=session)


async def move(
    db: Database, member_id: str, change: dict[str, int], entries: int, next_due: datetime | None, session: Any = None
) -> None:
    """Move a member's balances by ``change`` and its sequence by ``entries`` (whose documents are
    written apart), setting ``nextDueAt``: one round trip."""
    await db[MEMBERS].update_one(
        {"_id": member_id},
        {
            "$inc": {"ledgerSeq": entries, **{f"balances.{k}": v for k, v in change.items() if v}},
            "$set": {"nextDueAt": next_due},
        },
        session=session,
    )


async def insert_entry(db: Database, entry: Document, session: Any = None) -> None:
    """Write one entry whose change ``lock_applying`` already made to the member (one round trip)."""
    await db[LEDGER].insert_one(entry, session=session)


async def insert_entries(db: Database, entries: list[Document], session: Any = None) -> None:
    """Write entries whose changes were moved apart (``lock_applying``, ``move``): one round trip."""
    await insert_all(db[LEDGER], entries, session)


async def entry(db: Database, entry_id: Any, session: Any = None) -> Document | None:
    return await db[LEDGER].find_one({"_id": entry_id}, session=session)


async def entries(db: Database, entry_ids: list[Any]) -> list[Document]:
    """The entries with these ids, in the order asked (missing ones left out)."""
    found = {e["_id"]: e async for e in db[LEDGER].find({"_id": {"$in": entry_ids}})}
    return [found[i] for i in entry_ids if i in found]


async def restores_of(
    db: Database, member_id: str, spend_entry_id: Any, session: Any = None
) -> AsyncIterator[Document]:
    """Earlier entries that gave back part of a spend (their ``lots`` only), whichever account they
    were posted on: after a merge or its undoing, a spend's restores may sit on two members."""
    async for earlier in db[LEDGER].find({"restoredFrom": spend_entry_id}, {"lots": 1}, session=session):
        yield earlier


async def deltas_of(db: Database, member_id: str) -> AsyncIterator[Document]:
    """Every entry of one member, oldest first: its ``seq`` and ``delta`` only (the audit sums them)."""
    async for entry in db[LEDGER].find({"memberId": member_id}, {"delta": 1, "seq": 1}).sort("seq", 1):
        yield entry


async def between(db: Database, member_id: str, after: int, before: int | None) -> AsyncIterator[Document]:
    """One member's entries with ``after < seq < before`` (no upper bound if None), oldest first."""
    seq: Document = {"$gt": after}
    if before is not None:
        seq["$lt"] = before
    async for entry in db[LEDGER].find({"memberId": member_id, "seq": seq}).sort("seq", 1):
        yield entry


async def ledger_states(db: Database) -> AsyncIterator[Document]:
    """Every member's ledger fields (``balances``, ``ledgerSeq``, ``debt``, ``nextDueAt``), streamed."""
    async for member in db[MEMBERS].find({}, {"balances": 1, "ledgerSeq": 1, "debt": 1, "nextDueAt": 1}):
        yield member


async def earned_by_rule(
    db: Database, member_id: str, rule: str, *, since: datetime, today_from: datetime, session: Any = None
) -> tuple[int, int]:
    """Points the member earned by ``rule`` (``ruleEarned`` of its entries) from ``today_from`` on,
    and from ``since`` on: (today, this period)."""
    pipeline = [
        {"$match": {"memberId": member_id, "rule": rule, "createdAt": {"$gte": since}}},
        {"$project": {"p": "$ruleEarned", "today": {"$gte": ["$createdAt", today_from]}}},
        {"$group": {"_id": "$today", "p": {"$sum": "$p"}}},
    ]
    rows = await (await db[LEDGER].aggregate(pipeline, session=session)).to_list()
    by = {row["_id"]: row["p"] for row in rows}
    return by.get(True, 0), by.get(True, 0) + by.get(False, 0)


def watch_new_entries(db: Database, **options: Any) -> Any:
    """A change stream of the entries inserted from now (or ``resume_after`` a token); await it."""
    return db[LEDGER].watch([{"$match": {"operationType": "insert"}}], **options)


async def created_since(db: Database, since: datetime) -> AsyncIterator[Document]:
    """Every entry created at or after ``since`` (by the time in its id), oldest first."""
    async for entry in db[LEDGER].find({"_id": {"$gte": ObjectId.from_datetime(since)}}).sort("_id", 1):
        yield entry
