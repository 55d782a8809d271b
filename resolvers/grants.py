"""Grant requests: hand grants above the two-person threshold wait here for a second admin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from gateway.core.clock import as_utc
from gateway.core.errors import BadInput
from gateway.core.permissions import Permission, require_permission
from gateway.domain.grant_approval import RequestStatus
from gateway.store.mongo import Document
from resolvers.context import Info
from resolvers.enums import graphql_enum, to_domain
from resolvers.ledger_types import LedgerEntry
from resolvers.pagination import Connection, connection, decode_cursor, page_size

GrantRequestStatus = graphql_enum(
    RequestStatus,
    "GrantRequestStatus",
    "PENDING until a second person decides; APPROVED (posted), REJECTED, or EXPIRED undecided.",
)


@strawberry.type(description="A member of staff, as their token names them.")
class StaffActor:
    role: str
    subject: str

    @classmethod
    def of(cls, doc: Document | None) -> StaffActor | None:
        return cls(role=doc["role"], subject=doc["subject"]) if doc else None


@strawberry.type(
    description="A hand grant above the two-person threshold: it posts only when someone other than its requester "
    "approves it (grants:approve)."
)
class GrantRequest:
    id: strawberry.ID
    kind: str = strawberry.field(description="`points` for grantPoints; other features may file their own kinds.")
    member_ids: list[str]
    points: int = strawberry.field(description="Points per member (negative: taken back).")
    total_points: int = strawberry.field(description="|points| × members: what the thresholds compare.")
    reason: str
    status: GrantRequestStatus  # type: ignore[valid-type]
    requested_by: StaffActor
    requested_at: datetime
    expires_at: datetime
    decided_by: StaffActor | None
    decided_at: datetime | None
    note: str | None = strawberry.field(description="The approver's note, or why it was rejected.")
    entry_ids: strawberry.Private[list[Any]]

    @strawberry.field(description="The ledger entries its approval posted (none before).")
    async def entries(self, info: Info) -> list[LedgerEntry]:
        return [LedgerEntry.of(doc) for doc in await info.context.services.ledger.entries(self.entry_ids)]

    @classmethod
    def of(cls, doc: Document) -> GrantRequest:
        decided_at = doc.get("decidedAt")
        return cls(
            id=strawberry.ID(doc["_id"]),
            kind=doc["kind"],
            member_ids=list(doc.get("memberIds", [])),
            points=int(doc.get("points", 0)),
            total_points=int(doc["size"]),
            reason=doc["reason"],
            status=GrantRequestStatus(doc["status"]),
            requested_by=StaffActor(role=doc["requestedBy"]["role"], subject=doc["requestedBy"]["subject"]),
            requested_at=as_utc(doc["requestedAt"]),
            expires_at=as_utc(doc["expiresAt"]),
            decided_by=StaffActor.of(doc.get("decidedBy")),
            decided_at=as_utc(decided_at) if decided_at else None,
            note=doc.get("note"),
            entry_ids=list((doc.get("result") or {}).get("entryIds", [])),
        )


def _position(cursor: str | None) -> tuple[datetime, str] | None:
    value = decode_cursor(cursor)
    if value is None:
        return None
    at, _, last_id = value.partition("|")
    try:
        return datetime.fromisoformat(at), last_id
    except ValueError:
        raise BadInput("after is not a valid cursor", field="after") from None


@strawberry.type
class GrantRequestQuery:
    @strawberry.field(
        description="Grant requests, newest first: PENDING ones (the default) are the approvers' queue. Staff who "
        "approve (grants:approve) or adjust points (points:adjust) may read them."
    )
    async def grant_requests(
        self,
        info: Info,
        status: GrantRequestStatus | None = GrantRequestStatus.PENDING,  # type: ignore[valid-type,attr-defined]
        requested_by: str | None = None,
        member_id: str | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Connection[GrantRequest]:
        require_permission(info.context.principal, Permission.GRANTS_APPROVE, Permission.POINTS_ADJUST)
        size = page_size(first)
        docs = await info.context.services.grants.page(
            status=to_domain(RequestStatus, status).value if status else None,
            requested_by=requested_by,
            member_id=member_id,
            before=_position(after),
            limit=size + 1,
        )
        requests = [GrantRequest.of(doc) for doc in docs]
        return connection(requests, size, lambda r: f"{r.requested_at.isoformat()}|{r.id}")

    @strawberry.field(description="One grant request (grants:approve or points:adjust).")
    async def grant_request(self, info: Info, id: strawberry.ID) -> GrantRequest:
        require_permission(info.context.principal, Permission.GRANTS_APPROVE, Permission.POINTS_ADJUST)
        return GrantRequest.of(await info.context.services.grants.get(str(id)))


@strawberry.type
class GrantRequestMutation:
    @strawberry.mutation(
        description="A second person (grants:approve, not the requester: SECOND_APPROVER_REQUIRED) approves a "
        "pending grant request: it posts now, exactly once. GRANT_REQUEST_NOT_PENDING when already decided, "
        "GRANT_REQUEST_EXPIRED past its deadline."
    )
    async def approve_grant_request(self, info: Info, id: strawberry.ID, note: str | None = None) -> GrantRequest:
        who = require_permission(info.context.principal, Permission.GRANTS_APPROVE)
        doc = await info.context.services.grants.approve(who, str(id), note)
        for member_id in doc.get("memberIds", []):
            info.context.forget_member(member_id)
        return GrantRequest.of(doc)

    @strawberry.mutation(
        description="Close a pending grant request without posting it (grants:approve; its requester may so "
        "withdraw it). The reason is kept and audited."
    )
    async def reject_grant_request(self, info: Info, id: strawberry.ID, reason: str) -> GrantRequest:
        who = require_permission(info.context.principal, Permission.GRANTS_APPROVE)
        return GrantRequest.of(await info.context.services.grants.reject(who, str(id), reason))
