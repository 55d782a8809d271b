"""Idempotency records: one per (caller, key), written in the transaction of the work it guards."""

from __future__ import annotations

from typing import Any

from gateway.store.mongo import Database, Document


async def find_record(db: Database, record_id: str) -> Document | None:
    return await db.idempotency.find_one({"_id": record_id})


async def find_records(db: Database, record_ids: list[str]) -> dict[str, Document]:
    return {record["_id"]: record async for record in db.idempotency.find({"_id": {"$in": record_ids}})}


async def insert_records(db: Database, records: list[Document], session: Any) -> None:
    """Inside the work's transaction; a key used before fails the whole transaction (unique _id)."""
    if len(records) == 1:
        await db.idempotency.insert_one(records[0], session=session)
    else:
        await db.idempotency.insert_many(records, session=session)
