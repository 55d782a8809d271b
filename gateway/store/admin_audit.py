"""The admin audit log (``adminAudit``): append, seal and read, nothing else.

There is no update or delete of an entry's content here on purpose: the log is append-only.
An action appends its entry in its own transaction as *pending* (``pending: true``, no ``seq``
or hash yet): one insert, so concurrent actions never meet on a shared document. ``seal`` then
chains pending entries, in the order it finds them committed, after the head document
(``adminAuditHead``: the last sequence number and hash): it gives each its ``seq``, ``prevHash``
and ``hash`` and moves the head, all in one transaction of its own. Sealers meet only each other,
on the head, and a unique index on ``seq`` forbids a fork.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, UpdateOne

from gateway.domain.admin_audit import GENESIS, AuditEntry, chain_hash
from gateway.store.mongo import Database, Document

ADMIN_AUDIT = "adminAudit"
HEAD = "adminAuditHead"
HEAD_ID = "head"
PENDING = "pending"


async def append(db: Database, entry: AuditEntry, session: Any = None) -> Document:
    """Append ``entry`` as pending, inside the caller's transaction (``session``) if it has one;
    returns the stored document. ``seal`` gives it its place in the chain."""
    doc = {"_id": ObjectId(), **entry.body(), PENDING: True}
    await db[ADMIN_AUDIT].insert_one(doc, session=session)
    return doc


class SealConflict(Exception):
    """Entries believed pending were not (another sealer chained them first): nothing was written."""


async def any_pending(db: Database) -> bool:
    return await db[ADMIN_AUDIT].find_one({PENDING: True}, {"_id": 1}) is not None


async def seal(db: Database, head: tuple[int, str] | None, limit: int, session: Any) -> tuple[int, tuple[int, str]]:
    """Chain up to ``limit`` pending entries, as stored, oldest ``_id`` first, after the head, in the
    caller's transaction. ``head`` is what the caller believes the head is (None: read it): the
    head's own update checks it, and it is read when wrong. Returns (entries sealed, the head after)."""
    pending = await db[ADMIN_AUDIT].find({PENDING: True}, session=session).sort("_id", ASCENDING).to_list(limit)
    if not pending:
        return 0, head or (0, GENESIS)
    return len(pending), await seal_entries(db, head, pending, session)


async def seal_entries(
    db: Database, head: tuple[int, str] | None, docs: list[Document], session: Any
) -> tuple[int, str]:
    """Chain ``docs`` (pending entries as ``append`` wrote them), in ``_id`` order, after the head, in
    the caller's transaction; returns the head after. ``SealConflict`` (the caller aborts) when one of
    them is no longer pending."""
    docs = sorted(docs, key=lambda doc: doc["_id"])
    if head is not None and head[0] > 0:
        chained, after = _chain(head, docs)
        # the head moves only from where it was believed to be
        moved = await db[HEAD].update_one(
            {"_id": HEAD_ID, "seq": head[0], "hash": head[1]}, {"$set": after}, session=session
        )
        if not moved.matched_count:
            head = None
    if head is None or head[0] == 0:
        stored = await db[HEAD].find_one({"_id": HEAD_ID}, session=session)
        head = (int(stored["seq"]), str(stored["hash"])) if stored else (0, GENESIS)
        chained, after = _chain(head, docs)
        # read in this transaction: a sealer that moved (or made) it since meets this write as a conflict
        await db[HEAD].update_one({"_id": HEAD_ID}, {"$set": after}, upsert=True, session=session)
    written = await db[ADMIN_AUDIT].bulk_write(
        [
            UpdateOne({"_id": entry_id, PENDING: True}, {"$set": fields, "$unset": {PENDING: ""}})
            for entry_id, fields in chained
        ],
        ordered=False,
        session=session,
    )
    if written.matched_count != len(chained):
        raise SealConflict
    return after["seq"], after["hash"]


def _chain(head: tuple[int, str], pending: list[Document]) -> tuple[list[tuple[Any, Document]], Document]:
    """Each pending entry's place after ``head`` (its _id; its seq, prevHash and hash), and the new head."""
    seq, prev = head
    chained: list[tuple[Any, Document]] = []
    for doc in pending:
        seq += 1
        body = {k: v for k, v in doc.items() if k != PENDING}
        digest = chain_hash(prev, seq, body)
        chained.append((doc["_id"], {"seq": seq, "prevHash": prev, "hash": digest}))
        prev = digest
    return chained, {"seq": seq, "hash": prev}


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
    """Sealed entries, newest first; ``before_seq`` is the cursor (entries older than that sequence number)."""
    query = _filter(**filters)
    query.setdefault("seq", {"$exists": True})
    cursor = db[ADMIN_AUDIT].find(query).sort("seq", DESCENDING).limit(limit)
    return [doc async for doc in cursor]


async def all_in_order(db: Database, *, up_to: int | None = None) -> AsyncIterator[Document]:
    query: Document = {} if up_to is None else {"seq": {"$lte": up_to}}
    async for doc in db[ADMIN_AUDIT].find(query).sort("seq", ASCENDING):
        yield doc


async def last_seq(db: Database) -> int:
    """The highest sequence number any entry carries (0: none sealed)."""
    doc = await db[ADMIN_AUDIT].find_one({"seq": {"$exists": True}}, {"seq": 1}, sort=[("seq", DESCENDING)])
    return int(doc["seq"]) if doc else 0


async def head(db: Database) -> tuple[int, str] | None:
    doc = await db[HEAD].find_one({"_id": HEAD_ID})
    return (int(doc["seq"]), str(doc["hash"])) if doc else None
