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

from pymongo import ReturnDocument

from gateway.store.mongo import Database, Document

LEDGER = "ledger"
MEMBERS = "members"


async def lock_member(db: Database, member_id: str, session: Any = None) -> Document | None:
    """Write the member document first thing, so concurrent transactions on it conflict and retry."""
    return await db[MEMBERS].find_one_and_update(
        {"_id": member_id}, {"$inc": {"lockVersion": 1}}, return_document=ReturnDocument.AFTER, session=session
    )


async def add_debt(db: Database, member_id: str, points: int, session: Any = None) -> None:
    await db[MEMBERS].update_one({"_id": member_id}, {"$inc": {"debt": points}}, session=session)


async def set_next_due(db: Database, member_id: str, due: datetime, session: Any = None) -> None:
    await db[MEMBERS].update_one({"_id": member_id}, {"$set": {"nextDueAt": due}}, session=session)


async def append(
    db: Database, entry: Document, change: dict[str, int], next_due: datetime | None, session: Any = None
) -> None:
    """Write one entry and move its member's balances and sequence by it (two round trips)."""
    await db[MEMBERS].update_one(
        {"_id": entry["memberId"]},
        {
            "$inc": {"ledgerSeq": 1, **{f"balances.{k}": v for k, v in change.items() if v}},
            "$set": {"nextDueAt": next_due},
        },
        session=session,
    )
    await db[LEDGER].insert_one(entry, session=session)


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
