"""Holds repository (``holds``): points taken out of a member's lots and held until posted or voided.

Written only by the ledger (gateway/ledger/); read by the audit and the sweeper.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from gateway.store.mongo import Database, Document

HOLDS = "holds"


async def insert(db: Database, hold: Document, session: Any = None) -> None:
    await db[HOLDS].insert_one(hold, session=session)


async def find(db: Database, hold_id: Any, session: Any = None) -> Document | None:
    return await db[HOLDS].find_one({"_id": hold_id}, session=session)


async def member_of(db: Database, hold_id: Any, session: Any = None) -> str | None:
    found = await db[HOLDS].find_one({"_id": hold_id}, {"memberId": 1}, session=session)
    return None if found is None else str(found["memberId"])


async def close(db: Database, hold_id: Any, status: str, fields: Document, session: Any = None) -> bool:
    """HELD -> ``status``; False if the hold was not HELD any more."""
    changed = await db[HOLDS].update_one(
        {"_id": hold_id, "status": "HELD"}, {"$set": {"status": status, **fields}}, session=session
    )
    return changed.modified_count == 1


async def due(db: Database, now: datetime, limit: int) -> list[Document]:
    """Holds still HELD at or past their deadline, oldest deadline first."""
    cursor = db[HOLDS].find(
        {"status": "HELD", "expiresAt": {"$lte": now}}, {"purpose": 1, "source": 1, "memberId": 1, "expiresAt": 1}
    )
    return await cursor.sort("expiresAt", 1).limit(limit).to_list()


async def open_of(db: Database, member_id: str) -> AsyncIterator[Document]:
    """The member's holds still HELD (what their ``held`` balance must add up to)."""
    async for hold in db[HOLDS].find({"memberId": member_id, "status": "HELD"}, {"points": 1, "lots": 1}):
        yield hold


async def open_holds(db: Database, member_id: str, session: Any = None) -> list[Document]:
    """The member's holds still HELD, whole (to settle them inside the caller's transaction)."""
    return await db[HOLDS].find({"memberId": member_id, "status": "HELD"}, session=session).to_list()
