"""Ledger entries of a period, in the order they were written, for accountants' exports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from gateway.store.mongo import Database, Document


def entries_between(db: Database, start: datetime, end: datetime) -> AsyncIterator[Document]:
    """Every ledger entry with ``start <= createdAt < end``, oldest first (ties by entry id)."""
    cursor = db.ledger.find({"createdAt": {"$gte": start, "$lt": end}}).sort([("createdAt", 1), ("_id", 1)])
    return cursor.__aiter__()


async def count_between(db: Database, start: datetime, end: datetime) -> int:
    return await db.ledger.count_documents({"createdAt": {"$gte": start, "$lt": end}})
