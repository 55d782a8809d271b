"""Rate-limit counters and persisted (allow-listed) operations, shared by every gateway replica."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from gateway.store.mongo import Database, Document

RATE_LIMITS = "rate_limits"
APQ_TTL = timedelta(days=7)
PERSISTED_QUERIES = "persisted_queries"


async def count_hit(db: Database, key: str, window_start: datetime, expires_at: datetime, hits: int = 1) -> int:
    """Add ``hits`` to ``key``'s fixed window and return the window's count (atomic across replicas)."""
    window_id = f"{key}|{int(window_start.timestamp())}"
    for _ in range(2):  # two first hits racing on a new window: one upsert loses with a duplicate key
        try:
            doc = await db[RATE_LIMITS].find_one_and_update(
                {"_id": window_id},
                {"$inc": {"count": hits}, "$setOnInsert": {"expiresAt": expires_at}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
                projection={"count": 1},
            )
            return int(doc["count"]) if doc else hits
        except DuplicateKeyError:
            continue
    doc = await db[RATE_LIMITS].find_one({"_id": window_id}, {"count": 1})
    return int(doc["count"]) if doc else hits


async def window_count(db: Database, key: str, window_start: datetime) -> int:
    doc = await db[RATE_LIMITS].find_one({"_id": f"{key}|{int(window_start.timestamp())}"}, {"count": 1})
    return int(doc["count"]) if doc else 0


async def find_persisted(db: Database, sha256: str) -> Document | None:
    return await db[PERSISTED_QUERIES].find_one({"_id": sha256}, {"query": 1, "allowListed": 1})


async def save_persisted(
    db: Database, sha256: str, query: str, *, allow_listed: bool, name: str | None, now: datetime, source: str
) -> None:
    """Register a document by its hash. Allow-listing is sticky: an APQ registration never removes it."""
    update: dict[str, Any] = {
        "$setOnInsert": {"query": query, "registeredAt": now, "source": source},
        "$set": {"lastRegisteredAt": now},
    }
    if allow_listed:
        update["$set"].update({"allowListed": True, "name": name, "allowListedAt": now})
        update["$unset"] = {"expiresAt": ""}
    else:
        # An APQ entry is a cache: it expires unless registered again (clients do, on PersistedQueryNotFound).
        update["$setOnInsert"]["allowListed"] = False
        update["$set"]["expiresAt"] = now + APQ_TTL
    selector: dict[str, Any] = {"_id": sha256}
    if not allow_listed:  # an allow-listed document never gets an expiry from an APQ registration
        existing = await db[PERSISTED_QUERIES].find_one(selector, {"allowListed": 1})
        if existing is not None and existing.get("allowListed"):
            return
    try:
        await db[PERSISTED_QUERIES].update_one(selector, update, upsert=True)
    except DuplicateKeyError:  # a concurrent first registration of the same text: it is there now
        await db[PERSISTED_QUERIES].update_one(selector, update)
