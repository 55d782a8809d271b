"""Segment grants: points to every member matching a member filter, as a resumable background job.

- ``preview`` is the dry run: how many members, how many points in all, whether a second person
  must approve. Nothing is written.
- ``start`` records the job (PREPARING) and its audit entry; the same idempotency key from the
  same caller returns the same job.
- The runner (``run_job``/``run_pending``; in a server the ``segment-grants`` worker under the
  ``job:segment-grants`` lease, so one replica at a time) first takes the **snapshot**: every
  member matching the filter who had registered when the job was created becomes a PENDING
  target (pages by member id, checkpointed on the job; re-running a page adds nothing twice).
  Then it **grants**, target by target: each grant is one ledger transaction that also turns
  its target PENDING → GRANTED under that condition, so a member is granted exactly once
  however often the job is interrupted, resumed, or run by two replicas after a lost lease.
  A grant the ledger refuses (a frozen or erased member...) marks the target SKIPPED with the
  error's code.
- Progress (targets granted / skipped / pending, points granted) is written on the job after
  every batch; ``cancel`` stops the job between batches (what was granted stays granted).
- Above ``approval_threshold`` points in all, the job waits (AWAITING_APPROVAL) until someone
  holding ``grants:approve`` who is not its creator approves it (two-person rule).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from bson import ObjectId

from gateway.core.auth import Principal
from gateway.core.clock import Clock
from gateway.core.errors import BadInput, DomainError, Forbidden, IdempotencyConflict, NotFound, quote
from gateway.core.permissions import Permission, allows
from gateway.domain import segment_grants as rules
from gateway.domain.admin_audit import AuditAction
from gateway.domain.analytics import Segment
from gateway.domain.member_search import MemberFilter
from gateway.domain.segment_grants import JobStatus
from gateway.features.admin_audit import AdminAudit
from gateway.ledger import EntryKind, Ledger, LedgerTx, Memo, Source
from gateway.store import segment_grants as store
from gateway.store.mongo import Database, Document

log = logging.getLogger(__name__)


class AlreadyGranted(Exception):
    """The target was no longer PENDING inside the grant's transaction: roll the grant back."""


def job_not_found(job_id: str) -> NotFound:
    return NotFound(f"Segment grant {quote(job_id)} not found", jobId=job_id)


def filter_document(member_filter: MemberFilter) -> Document:
    fields = dataclasses.asdict(member_filter)
    fields["tiers"] = list(member_filter.tiers)
    fields["segments"] = [str(s) for s in member_filter.segments]
    return fields


def filter_of(doc: Document) -> MemberFilter:
    fields = dict(doc)
    fields["tiers"] = tuple(fields.get("tiers") or ())
    fields["segments"] = tuple(Segment(s) for s in fields.get("segments") or ())
    return MemberFilter(**fields)


def _fingerprint(member_filter: MemberFilter, points: int, reason: str) -> str:
    payload = {"filter": member_filter.describe(), "points": points, "reason": reason}
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


@dataclass(frozen=True)
class RunReport:
    jobs: int = 0
    granted: int = 0
    skipped: int = 0

    def __str__(self) -> str:
        return f"segment grant jobs worked on: {self.jobs}; members granted: {self.granted}, skipped: {self.skipped}"


class SegmentGrants:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        ledger: Ledger,
        audit: AdminAudit,
        *,
        approval_threshold: int,
        batch_size: int = 200,
        concurrency: int = 4,
        chunk_size: int = 20,
    ) -> None:
        self.db = db
        self.clock = clock
        self.ledger = ledger
        self.audit = audit
        self.approval_threshold = approval_threshold
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.chunk_size = chunk_size

    # -- staff ------------------------------------------------------------------------------

    async def preview(self, member_filter: MemberFilter, points: int) -> Document:
        """The dry run: who would be granted now, and whether a second person must approve."""
        problem = rules.request_problem(points, "preview")
        if problem is not None:
            raise BadInput(str(problem), field=problem.field)
        members = await store.count_segment(self.db, member_filter, self.clock.now())
        return {
            "members": members,
            "points": points,
            "pointsTotal": rules.total_points(members, points),
            "needsApproval": rules.needs_approval(members, points, self.approval_threshold),
            "approvalThreshold": self.approval_threshold,
        }

    async def start(
        self, principal: Principal, member_filter: MemberFilter, points: int, reason: str, key: str
    ) -> Document:
        reason = reason.strip()
        problem = rules.request_problem(points, reason)
        if problem is not None:
            raise BadInput(str(problem), field=problem.field)
        if not 1 <= len(key) <= 200:
            raise BadInput("idempotencyKey must be 1 to 200 characters", field="idempotencyKey")
        fingerprint = _fingerprint(member_filter, points, reason)
        now = self.clock.now()
        doc: Document = {
            "_id": ObjectId(),
            "status": str(JobStatus.PREPARING),
            "filter": filter_document(member_filter),
            "filterDescription": member_filter.describe(),
            "points": points,
            "reason": reason,
            "createdBy": principal.subject,
            "createdByRole": principal.role.value,
            "createdAt": now,
            "idempotencyKey": key,
            "fingerprint": fingerprint,
            "total": None,
            "granted": 0,
            "skipped": 0,
            "snapshotAfter": None,
            "snapshotted": 0,
        }

        async def work(session: Any) -> None:
            await store.insert_job(self.db, doc, session=session)
            await self.audit.record(
                principal,
                AuditAction.SEGMENT_GRANT,
                "segmentGrant",
                str(doc["_id"]),
                {"event": "created", "filter": member_filter.describe(), "points": points},
                reason=reason,
                session=session,
            )

        existing = await store.job_for_key(self.db, principal.subject, key)
        if existing is None:
            try:
                await self.db.transaction(work)
                return doc
            except store.JobKeyTaken:  # a concurrent start with the same key won
                existing = await store.job_for_key(self.db, principal.subject, key)
                if existing is None:
                    raise LookupError("segment grant idempotency key taken but no job found") from None
        if existing["fingerprint"] != fingerprint:
            raise IdempotencyConflict(
                "This idempotencyKey was already used for a different segment grant", idempotencyKey=key
            )
        return {**existing, "replayed": True}

    async def get(self, job_id: str) -> Document:
        doc = await store.find_job(self.db, job_id)
        if doc is None:
            raise job_not_found(job_id)
        return doc

    async def page(self, *, after: str | None, size: int) -> list[Document]:
        return await store.page(self.db, before=after, size=size)

    async def targets(self, job_id: str, status: str | None, *, after: str | None, size: int) -> list[Document]:
        return await store.targets_page(self.db, job_id, status, after=after, size=size)

    async def approve(self, principal: Principal, job_id: str, note: str | None = None) -> Document:
        """Two-person rule: a second person holding grants:approve lets a large job run."""
        if not allows(principal, Permission.GRANTS_APPROVE):
            raise Forbidden("Approving a segment grant needs grants:approve")

        async def work(session: Any) -> Document:
            job = await store.find_job(self.db, job_id, session=session)
            if job is None:
                raise job_not_found(job_id)
            if job["createdBy"] == principal.subject:
                raise DomainError(
                    "A segment grant is approved by someone other than its creator (two-person rule)",
                    code="SECOND_APPROVER_REQUIRED",
                )
            now = self.clock.now()
            fields = {"status": str(JobStatus.RUNNING), "approvedBy": principal.subject, "approvedAt": now}
            after = await store.transition(self.db, job["_id"], JobStatus.AWAITING_APPROVAL, fields, session=session)
            if after is None:
                raise DomainError(f"The segment grant is {job['status']}, not awaiting approval", code="INVALID_STATE")
            await self.audit.record(
                principal,
                AuditAction.SEGMENT_GRANT,
                "segmentGrant",
                job_id,
                {"event": "approved", "members": job["total"], "pointsTotal": job["total"] * job["points"]},
                reason=note,
                session=session,
            )
            return after

        return await self.db.transaction(work)

    async def cancel(self, principal: Principal, job_id: str, reason: str) -> Document:
        """Stop a job before it completes; members already granted keep their points."""
        reason = reason.strip()
        if not 1 <= len(reason) <= 200:
            raise BadInput("reason must be 1 to 200 characters", field="reason")

        async def work(session: Any) -> Document:
            job = await store.find_job(self.db, job_id, session=session)
            if job is None:
                raise job_not_found(job_id)
            fields = {
                "status": str(JobStatus.CANCELLED),
                "cancelledBy": principal.subject,
                "cancelledAt": self.clock.now(),
            }
            after = await store.transition(self.db, job["_id"], tuple(rules.ACTIVE), fields, session=session)
            if after is None:
                raise DomainError(f"The segment grant is already {job['status']}", code="INVALID_STATE")
            await self.audit.record(
                principal,
                AuditAction.SEGMENT_GRANT,
                "segmentGrant",
                job_id,
                {"event": "cancelled", "granted": job.get("granted", 0)},
                reason=reason,
                session=session,
            )
            return after

        return await self.db.transaction(work)

    # -- the runner -------------------------------------------------------------------------

    async def run_pending(self) -> RunReport:
        """Work on every job that has work, oldest first (the worker's job under its lease)."""
        report = RunReport()
        for job in await store.runnable(self.db):
            granted, skipped = await self.run_job(str(job["_id"]))
            report = RunReport(report.jobs + 1, report.granted + granted, report.skipped + skipped)
        return report

    async def run_job(self, job_id: str, *, max_members: int | None = None) -> tuple[int, int]:
        """Take the job as far as it goes now: snapshot, then grants (at most ``max_members`` of
        them, for a test that stops midway). Returns (granted, skipped) by this run."""
        job = await self.get(job_id)
        if job["status"] == JobStatus.PREPARING:
            job = await self._snapshot(job)
        if job["status"] != JobStatus.RUNNING:
            return 0, 0
        return await self._grant_all(job, max_members)

    async def _snapshot(self, job: Document) -> Document:
        job_id = str(job["_id"])
        member_filter = filter_of(job["filter"])
        after = job.get("snapshotAfter")
        while True:
            current = await store.find_job(self.db, job_id)
            if current is None or current["status"] != JobStatus.PREPARING:
                return current or job
            last, added = await store.snapshot_page(
                self.db, job_id, member_filter, job["createdAt"], after, self.batch_size
            )
            if last is None:
                break
            after = last
            await store.set_fields(self.db, job["_id"], {"snapshotAfter": after}, inc={"snapshotted": added})
        counts = await store.target_counts(self.db, job_id)
        total = sum(counts.values())
        status = rules.after_snapshot(total, job["points"], self.approval_threshold)
        fields: Document = {"status": str(status), "total": total, "snapshotAt": self.clock.now()}
        if status == JobStatus.COMPLETED:
            fields["finishedAt"] = self.clock.now()
        moved = await store.transition(self.db, job["_id"], JobStatus.PREPARING, fields)
        return moved if moved is not None else await self.get(job_id)

    async def _grant_all(self, job: Document, max_members: int | None) -> tuple[int, int]:
        job_id = str(job["_id"])
        granted = skipped = 0
        limit = asyncio.Semaphore(self.concurrency)

        async def chunk(targets: list[Document]) -> list[bool | None]:
            async with limit:
                return await self._grant_chunk(job, targets)

        while max_members is None or granted + skipped < max_members:
            current = await store.find_job(self.db, job_id)
            if current is None or current["status"] != JobStatus.RUNNING:
                break  # cancelled between batches
            size = self.batch_size if max_members is None else min(self.batch_size, max_members - granted - skipped)
            targets = await store.pending_targets(self.db, job_id, size)
            if not targets:
                await self._progress(job, finished=True)
                break
            chunks = [targets[i : i + self.chunk_size] for i in range(0, len(targets), self.chunk_size)]
            outcomes = [o for done in await asyncio.gather(*(chunk(c) for c in chunks)) for o in done]
            granted += sum(1 for o in outcomes if o is True)
            skipped += sum(1 for o in outcomes if o is False)
            await self._progress(job, finished=False)
        return granted, skipped

    def _memo(self, job: Document) -> Memo:
        job_id = str(job["_id"])
        return Memo(EntryKind.GRANT, job["reason"], Source("SEGMENT_GRANT", job_id), {"segmentGrantId": job_id})

    async def _grant_chunk(self, job: Document, targets: list[Document]) -> list[bool | None]:
        """Several members in one ledger transaction (fewer commits); if any of them is refused or
        already done, the chunk rolls back whole and its members go one by one."""
        if len(targets) == 1:
            return [await self._grant_one(job, targets[0])]
        memo = self._memo(job)

        async def work(tx: LedgerTx) -> Document:
            for target in targets:
                entry = await tx.earn(target["memberId"], job["points"], memo)
                if not await store.mark_granted(tx.db, target["_id"], entry["_id"], tx.now, tx.session):
                    raise AlreadyGranted(target["_id"])
            return {}

        try:
            await self.ledger.transact(work)
        except (AlreadyGranted, DomainError):
            return [await self._grant_one(job, target) for target in targets]
        return [True] * len(targets)

    async def _grant_one(self, job: Document, target: Document) -> bool | None:
        """True granted, False skipped, None already done (by an earlier or concurrent run)."""
        memo = self._memo(job)

        async def work(tx: LedgerTx) -> Document:
            entry = await tx.earn(target["memberId"], job["points"], memo)
            if not await store.mark_granted(tx.db, target["_id"], entry["_id"], tx.now, tx.session):
                raise AlreadyGranted(target["_id"])
            return {"entryId": entry["_id"]}

        try:
            await self.ledger.transact(work)
        except AlreadyGranted:
            return None
        except DomainError as exc:
            if await store.mark_skipped(self.db, target["_id"], exc.code, exc.message, self.clock.now()):
                return False
            return None
        return True

    async def _progress(self, job: Document, *, finished: bool) -> None:
        counts = await store.target_counts(self.db, str(job["_id"]))
        progress = rules.progress(job["total"], counts, job["points"])
        fields: Document = {
            "granted": progress.granted,
            "skipped": progress.skipped,
            "progressAt": self.clock.now(),
        }
        if finished and progress.pending == 0:
            fields |= {"status": str(JobStatus.COMPLETED), "finishedAt": self.clock.now()}
            if await store.transition(self.db, job["_id"], JobStatus.RUNNING, fields) is None:
                await store.set_fields(self.db, job["_id"], {k: fields[k] for k in ("granted", "skipped")})
            return
        await store.set_fields(self.db, job["_id"], fields)
