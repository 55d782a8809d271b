"""Members repository: member documents (``members``), their tier history (``tier_changes``)
and growth events (``growth_events``).

Balances, ``ledgerSeq``, ``debt`` and ``nextDueAt`` are written only by the ledger
(``gateway.ledger``); this module owns everything else about a member.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

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
            {"$set": fields},
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
