"""Segment grant jobs (``segment_grants``) and their per-member targets (``segment_grant_targets``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import InsertOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from gateway.core.errors import BadInput
from gateway.domain.member_search import MemberFilter
from gateway.domain.segment_grants import JobStatus, TargetStatus, target_id
from gateway.store.members import MEMBERS, filter_query
from gateway.store.mongo import Database, Document

JOBS = "segment_grants"
TARGETS = "segment_grant_targets"
DUPLICATE_KEY = 11000


def object_id(job_id: str) -> ObjectId | None:
    try:
        return ObjectId(job_id)
    except (InvalidId, TypeError):
        return None


class JobKeyTaken(Exception):
    """The creator already started a job with this idempotency key (the transaction is aborted)."""


async def insert_job(db: Database, doc: Document, session: Any = None) -> None:
    try:
        await db[JOBS].insert_one(doc, session=session)
    except DuplicateKeyError:
        raise JobKeyTaken(doc["idempotencyKey"]) from None


async def find_job(db: Database, job_id: str, session: Any = None) -> Document | None:
    oid = object_id(job_id)
    return None if oid is None else await db[JOBS].find_one({"_id": oid}, session=session)


async def job_for_key(db: Database, created_by: str, key: str) -> Document | None:
    return await db[JOBS].find_one({"createdBy": created_by, "idempotencyKey": key})


async def page(db: Database, *, before: str | None, size: int) -> list[Document]:
    query: Document = {}
    if before is not None:
        oid = object_id(before)
        if oid is None:
            raise BadInput("after is not a valid cursor", field="after")
        query["_id"] = {"$lt": oid}
    return await db[JOBS].find(query).sort("_id", -1).limit(size).to_list()


async def runnable(db: Database) -> list[Document]:
    """Jobs a runner has work on (a snapshot to take, members to grant), oldest first."""
    statuses = [str(JobStatus.PREPARING), str(JobStatus.RUNNING)]
    return await db[JOBS].find({"status": {"$in": statuses}}).sort("_id", 1).to_list()


async def transition(
    db: Database, job_id: Any, frm: JobStatus | tuple[JobStatus, ...], fields: Document, session: Any = None
) -> Document | None:
    """Set ``fields`` if the job is (still) in ``frm``; the job after, or None if it moved on."""
    allowed = [str(s) for s in (frm if isinstance(frm, tuple) else (frm,))]
    return await db[JOBS].find_one_and_update(
        {"_id": job_id, "status": {"$in": allowed}}, {"$set": fields}, return_document=True, session=session
    )


async def set_fields(db: Database, job_id: Any, fields: Document, inc: Document | None = None) -> None:
    update: Document = {"$set": fields}
    if inc:
        update["$inc"] = inc
    await db[JOBS].update_one({"_id": job_id}, update)


INACTIVE = ["FROZEN", "CLOSED"]  # gateway/domain/member_status.py: they neither earn nor spend


def segment_query(member_filter: MemberFilter, registered_by: datetime) -> Document:
    """The members of a job's segment: the filter's members who had registered by the job's creation
    and whose account is active (not frozen, not closed by erasure)."""
    query = filter_query(member_filter)
    cutoff = {"registeredAt": {"$lte": registered_by}, "status": {"$nin": INACTIVE}}
    return {"$and": [query, cutoff]} if query else cutoff


async def count_segment(db: Database, member_filter: MemberFilter, registered_by: datetime) -> int:
    return await db[MEMBERS].count_documents(segment_query(member_filter, registered_by))


async def snapshot_page(
    db: Database, job_id: str, member_filter: MemberFilter, registered_by: datetime, after: str | None, limit: int
) -> tuple[str | None, int]:
    """Add the next ``limit`` members of the segment (by id, after ``after``) as PENDING targets;
    returns the last member id seen (None when the segment is exhausted) and how many were new. Re-running a page is a
    no-op for the targets it already added (their id is the job and the member)."""
    query = segment_query(member_filter, registered_by)
    if after is not None:
        query = {"$and": [query, {"_id": {"$gt": after}}]}
    ids = [d["_id"] async for d in db[MEMBERS].find(query, {"_id": 1}).sort("_id", 1).limit(limit)]
    if not ids:
        return None, 0
    writes = [
        InsertOne({"_id": target_id(job_id, m), "jobId": job_id, "memberId": m, "status": str(TargetStatus.PENDING)})
        for m in ids
    ]
    try:
        inserted = (await db[TARGETS].bulk_write(writes, ordered=False)).inserted_count
    except BulkWriteError as exc:
        if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
            raise
        inserted = exc.details.get("nInserted", 0)
    return str(ids[-1]), inserted


async def pending_targets(db: Database, job_id: str, limit: int) -> list[Document]:
    query = {"jobId": job_id, "status": str(TargetStatus.PENDING)}
    return await db[TARGETS].find(query).sort("_id", 1).limit(limit).to_list()


async def mark_granted(db: Database, target: str, entry_id: Any, at: datetime, session: Any) -> bool:
    """PENDING → GRANTED, in the grant's own transaction: False if it was no longer pending."""
    result = await db[TARGETS].update_one(
        {"_id": target, "status": str(TargetStatus.PENDING)},
        {"$set": {"status": str(TargetStatus.GRANTED), "entryId": entry_id, "at": at}},
        session=session,
    )
    return result.modified_count == 1


async def mark_skipped(db: Database, target: str, code: str, message: str, at: datetime) -> bool:
    result = await db[TARGETS].update_one(
        {"_id": target, "status": str(TargetStatus.PENDING)},
        {"$set": {"status": str(TargetStatus.SKIPPED), "code": code, "message": message[:200], "at": at}},
    )
    return result.modified_count == 1


async def target_counts(db: Database, job_id: str) -> dict[str, int]:
    pipeline: list[Document] = [{"$match": {"jobId": job_id}}, {"$group": {"_id": "$status", "n": {"$sum": 1}}}]
    rows = await (await db[TARGETS].aggregate(pipeline)).to_list()
    return {row["_id"]: row["n"] for row in rows}


async def targets_page(
    db: Database, job_id: str, status: str | None, *, after: str | None, size: int
) -> list[Document]:
    query: Document = {"jobId": job_id}
    if status is not None:
        query["status"] = status
    if after is not None:
        query["_id"] = {"$gt": after}
    return await db[TARGETS].find(query).sort("_id", 1).limit(size).to_list()
