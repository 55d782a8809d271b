"""Grant requests (two-person rule) and support's daily hand-grant usage.

Collections: ``grantRequests`` (one document per grant waiting for, or given, a second person's
decision) and ``staffGrantUsage`` (``_id`` ``<subject>|<local day>``: points one agent moved by
hand that day, counted in the grant's own transaction).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import DESCENDING

from gateway.store.mongo import Database, Document

GRANT_REQUESTS = "grantRequests"
USAGE = "staffGrantUsage"


async def insert_request(db: Database, doc: Document, session: Any) -> None:
    await db[GRANT_REQUESTS].insert_one(doc, session=session)


async def find_request(db: Database, request_id: str, session: Any = None) -> Document | None:
    return await db[GRANT_REQUESTS].find_one({"_id": request_id}, session=session)


async def decide(db: Database, request_id: str, changes: Document, session: Any) -> Document | None:
    """Move a PENDING request to its decision; None when it is no longer pending (someone decided
    first). Inside a transaction, two deciders meet as a write conflict: the retry sees the first
    decision and gets None."""
    result: Document | None = await db[GRANT_REQUESTS].find_one_and_update(
        {"_id": request_id, "status": "PENDING"},
        {"$set": changes},
        session=session,
        return_document=True,
    )
    return result


def _status_query(status: str | None, now: datetime) -> Document:
    """Expiry is computed, not written: a PENDING request past ``expiresAt`` is EXPIRED."""
    if status is None:
        return {}
    if status == "PENDING":
        return {"status": "PENDING", "expiresAt": {"$gt": now}}
    if status == "EXPIRED":
        return {"status": "PENDING", "expiresAt": {"$lte": now}}
    return {"status": status}


async def page(
    db: Database,
    *,
    status: str | None,
    now: datetime,
    requested_by: str | None = None,
    member_id: str | None = None,
    before: tuple[datetime, str] | None = None,
    limit: int,
) -> list[Document]:
    """Newest first; ``before`` is the (requestedAt, id) of the last request of the previous page."""
    query = _status_query(status, now)
    if requested_by is not None:
        query["requestedBy.subject"] = requested_by
    if member_id is not None:
        query["memberIds"] = member_id
    if before is not None:
        at, last_id = before
        query["$or"] = [{"requestedAt": {"$lt": at}}, {"requestedAt": at, "_id": {"$lt": last_id}}]
    cursor = db[GRANT_REQUESTS].find(query).sort([("requestedAt", DESCENDING), ("_id", DESCENDING)]).limit(limit)
    return [doc async for doc in cursor]


def usage_id(subject: str, day: str) -> str:
    return f"{subject}|{day}"


async def usage(db: Database, subject: str, day: str, session: Any) -> int:
    doc = await db[USAGE].find_one({"_id": usage_id(subject, day)}, session=session)
    return int(doc["points"]) if doc else 0


async def add_usage(db: Database, subject: str, day: str, points: int, session: Any) -> None:
    """Count ``points`` in the grant's transaction: concurrent grants of one agent meet on this
    document as write conflicts, and the retry reads the usage the first one committed."""
    await db[USAGE].update_one(
        {"_id": usage_id(subject, day)},
        {"$inc": {"points": points}, "$setOnInsert": {"subject": subject, "day": day}},
        upsert=True,
        session=session,
    )
