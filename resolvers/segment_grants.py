"""Staff GraphQL over segment grants: dry run, start, progress, approval, cancellation.

Who: campaigns:manage runs them (preview, start, cancel); grants:approve approves the large ones
(two-person rule) and may read and cancel them too.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from gateway.core.errors import BadInput
from gateway.core.permissions import Permission, require_permission
from gateway.domain import segment_grants as rules
from gateway.store.mongo import Document
from resolvers.context import Info
from resolvers.enums import graphql_enum
from resolvers.member_search import MemberFilterInput, member_filter
from resolvers.pagination import Connection, connection, decode_cursor, page_size

SegmentGrantStatus = graphql_enum(
    rules.JobStatus,
    "SegmentGrantStatus",
    "PREPARING (taking the snapshot), AWAITING_APPROVAL, RUNNING, COMPLETED, CANCELLED.",
)
SegmentGrantTargetStatus = graphql_enum(rules.TargetStatus, "SegmentGrantTargetStatus", "PENDING, GRANTED, SKIPPED.")
READERS = (Permission.CAMPAIGNS_MANAGE, Permission.GRANTS_APPROVE)


@strawberry.type(description="The dry run of a segment grant: nothing is written.")
class SegmentGrantPreview:
    members: int = strawberry.field(description="Members the grant would reach now.")
    points: int = strawberry.field(description="Points per member.")
    points_total: int
    needs_approval: bool = strawberry.field(
        description="Above the threshold: a second person (grants:approve) approves."
    )
    approval_threshold: int


@strawberry.type(description="One member of a segment grant's snapshot.")
class SegmentGrantTarget:
    member_id: str
    status: SegmentGrantTargetStatus  # type: ignore[valid-type]
    code: str | None = strawberry.field(description="Why it was skipped (MEMBER_FROZEN, MEMBER_NOT_FOUND...).")
    message: str | None
    at: datetime | None

    @classmethod
    def of(cls, doc: Document) -> SegmentGrantTarget:
        return cls(
            member_id=doc["memberId"],
            status=SegmentGrantTargetStatus(doc["status"]),
            code=doc.get("code"),
            message=doc.get("message"),
            at=doc.get("at"),
        )


@strawberry.type(description="Points to every member of a segment, as a background job (docs/campaigns.md).")
class SegmentGrant:
    id: strawberry.ID
    status: SegmentGrantStatus  # type: ignore[valid-type]
    filter: JSON = strawberry.field(description="The member filter, as given.")
    points: int = strawberry.field(description="Points per member.")
    reason: str
    total: int | None = strawberry.field(description="Members in the snapshot; null while it is being taken.")
    snapshotted: int = strawberry.field(description="Members in the snapshot so far (while PREPARING).")
    granted: int
    skipped: int
    pending: int | None
    percent: int = strawberry.field(description="Whole percent of the snapshot done (granted or skipped).")
    points_total: int | None = strawberry.field(description="total × points: what the job grants if none is skipped.")
    points_granted: int
    created_by: str
    created_at: datetime
    approved_by: str | None
    approved_at: datetime | None
    snapshot_at: datetime | None
    progress_at: datetime | None
    finished_at: datetime | None
    cancelled_by: str | None
    cancelled_at: datetime | None
    replayed: bool = False

    @strawberry.field(description="The snapshot's members, by id; filter by status (SKIPPED shows why).")
    async def targets(
        self,
        info: Info,
        status: SegmentGrantTargetStatus | None = None,  # type: ignore[valid-type]
        first: int = 20,
        after: str | None = None,
    ) -> Connection[SegmentGrantTarget]:
        size = page_size(first)
        job_id = str(self.id)
        after_id = decode_cursor(after)
        if after_id is not None and not after_id.startswith(rules.target_id(job_id, "")):
            raise BadInput("after is not a valid cursor", field="after")  # another job's, or not ours at all
        docs = await info.context.services.segment_grants.targets(
            job_id, status.value if status is not None else None, after=after_id, size=size + 1
        )
        return connection(
            [SegmentGrantTarget.of(d) for d in docs], size, lambda t: rules.target_id(job_id, t.member_id)
        )

    @classmethod
    def of(cls, doc: Document) -> SegmentGrant:
        total = doc.get("total")
        counts = {"GRANTED": doc["granted"], "SKIPPED": doc["skipped"]}
        progress = rules.progress(total, counts, doc["points"]) if total is not None else None
        return cls(
            id=strawberry.ID(str(doc["_id"])),
            status=SegmentGrantStatus(doc["status"]),
            filter=doc["filterDescription"],
            points=doc["points"],
            reason=doc["reason"],
            total=total,
            snapshotted=doc.get("snapshotted", 0),
            granted=doc["granted"],
            skipped=doc["skipped"],
            pending=progress.pending if progress else None,
            percent=progress.percent if progress else 0,
            points_total=rules.total_points(total, doc["points"]) if total is not None else None,
            points_granted=doc["granted"] * doc["points"],
            created_by=doc["createdBy"],
            created_at=doc["createdAt"],
            approved_by=doc.get("approvedBy"),
            approved_at=doc.get("approvedAt"),
            snapshot_at=doc.get("snapshotAt"),
            progress_at=doc.get("progressAt"),
            finished_at=doc.get("finishedAt"),
            cancelled_by=doc.get("cancelledBy"),
            cancelled_at=doc.get("cancelledAt"),
            replayed=doc.get("replayed", False),
        )


def _check_job_id(value: strawberry.ID) -> str:
    text = str(value)
    if not 1 <= len(text) <= 64:
        raise BadInput("id is not a segment grant id", field="id")
    return text


@strawberry.input
class SegmentGrantInput:
    filter: MemberFilterInput | None = strawberry.field(
        default=None, description="The members, as in member search; none: every member."
    )
    points: int = strawberry.field(description="Points per member, 1 to 100,000.")
    reason: str = strawberry.field(description="Shown on each member's ledger entry.")
    idempotency_key: str


@strawberry.type
class SegmentGrantQuery:
    @strawberry.field(description="Dry run (campaigns:manage): how many members, how many points, approval needed.")
    async def segment_grant_preview(
        self, info: Info, points: int, filter: MemberFilterInput | None = None
    ) -> SegmentGrantPreview:
        require_permission(info.context.principal, Permission.CAMPAIGNS_MANAGE)
        result = await info.context.services.segment_grants.preview(member_filter(filter), points)
        return SegmentGrantPreview(
            members=result["members"],
            points=result["points"],
            points_total=result["pointsTotal"],
            needs_approval=result["needsApproval"],
            approval_threshold=result["approvalThreshold"],
        )

    @strawberry.field(description="One segment grant and its progress (campaigns:manage or grants:approve).")
    async def segment_grant(self, info: Info, id: strawberry.ID) -> SegmentGrant:
        require_permission(info.context.principal, *READERS)
        return SegmentGrant.of(await info.context.services.segment_grants.get(_check_job_id(id)))

    @strawberry.field(description="Segment grants, newest first (campaigns:manage or grants:approve).")
    async def segment_grants(self, info: Info, first: int = 20, after: str | None = None) -> Connection[SegmentGrant]:
        require_permission(info.context.principal, *READERS)
        size = page_size(first)
        docs = await info.context.services.segment_grants.page(after=decode_cursor(after), size=size + 1)
        return connection([SegmentGrant.of(d) for d in docs], size, lambda g: str(g.id))


@strawberry.type
class SegmentGrantMutation:
    @strawberry.mutation(
        description="Start a segment grant (campaigns:manage; audited). It runs in the background: watch "
        "segmentGrant(id). The same idempotencyKey returns the same job."
    )
    async def start_segment_grant(self, info: Info, input: SegmentGrantInput) -> SegmentGrant:
        who = require_permission(info.context.principal, Permission.CAMPAIGNS_MANAGE)
        doc = await info.context.services.segment_grants.start(
            who, member_filter(input.filter), input.points, input.reason, input.idempotency_key
        )
        return SegmentGrant.of(doc)

    @strawberry.mutation(description="Approve a large segment grant (grants:approve; not its creator; audited).")
    async def approve_segment_grant(self, info: Info, id: strawberry.ID, note: str | None = None) -> SegmentGrant:
        who = require_permission(info.context.principal, Permission.GRANTS_APPROVE)
        return SegmentGrant.of(await info.context.services.segment_grants.approve(who, _check_job_id(id), note))

    @strawberry.mutation(
        description="Stop a segment grant before it completes (campaigns:manage or grants:approve; audited). "
        "Members already granted keep their points."
    )
    async def cancel_segment_grant(self, info: Info, id: strawberry.ID, reason: str) -> SegmentGrant:
        who = require_permission(info.context.principal, *READERS)
        return SegmentGrant.of(await info.context.services.segment_grants.cancel(who, _check_job_id(id), reason))
