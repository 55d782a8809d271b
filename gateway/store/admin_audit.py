"""The admin audit log (``adminAudit``): append and read, nothing else.

There is no update or delete here on purpose: the log is append-only. Appends are serialized by
one head document (``adminAuditHead``) holding the last sequence number and hash, updated in the
caller's transaction, so the hash chain has no forks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument

from gateway.domain.admin_audit import GENESIS, AuditEntry, chain_hash
from gateway.store.mongo import Database, Document

ADMIN_AUDIT = "adminAudit"
HEAD = "adminAuditHead"
HEAD_ID = "head"


async def append(db: Database, entry: AuditEntry, session: Any) -> Document:
    """Append ``entry`` inside the caller's transaction (``session``); returns the stored document."""
    head = await db[HEAD].find_one_and_update(
        {"_id": HEAD_ID},
        {"$inc": {"seq": 1}, "$setOnInsert": {"hash": GENESIS}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    assert head is not None  # upserted
    seq = int(head["seq"])
    body = entry.body()
    digest = chain_hash(head["hash"], seq, body)
    doc = {"_id": seq, "seq": seq, **body, "prevHash": head["hash"], "hash": digest}
    await db[HEAD].update_one({"_id": HEAD_ID}, {"$set": {"hash": digest}}, session=session)
    await db[ADMIN_AUDIT].insert_one(doc, session=session)
    return doc


def _filter(
    *,
    actions: list[str] | None = None,
    actor: str | None = None,
    target_kind: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_seq: int | None = None,
) -> Document:
    query: Document = {}
    if actions:
        query["action"] = {"$in": actions}
    if actor is not None:
        query["actor"] = actor
    if target_kind is not None:
        query["targetKind"] = target_kind
    if target_id is not None:
        query["targetId"] = target_id
    at: Document = {}
    if since is not None:
        at["$gte"] = since
    if until is not None:
        at["$lt"] = until
    if at:
        query["at"] = at
    if before_seq is not None:
        query["seq"] = {"$lt": before_seq}
    return query


async def find(db: Database, *, limit: int, **filters: Any) -> list[Document]:
    """Newest first; ``before_seq`` is the cursor (entries older than that sequence number)."""
    cursor = db[ADMIN_AUDIT].find(_filter(**filters)).sort("seq", DESCENDING).limit(limit)
    return [doc async for doc in cursor]


async def all_in_order(db: Database, *, up_to: int | None = None) -> AsyncIterator[Document]:
    query: Document = {} if up_to is None else {"seq": {"$lte": up_to}}
    async for doc in db[ADMIN_AUDIT].find(query).sort("seq", ASCENDING):
        yield doc


async def head(db: Database) -> tuple[int, str] | None:
    doc = await db[HEAD].find_one({"_id": HEAD_ID})
    return (int(doc["seq"]), str(doc["hash"])) if doc else None
