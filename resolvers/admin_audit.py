"""The admin audit log, for those who hold audit:read: filtered, newest first, and its verification."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from gateway.core.clock import as_utc
from gateway.core.errors import BadInput
from gateway.core.permissions import Permission, require_permission
from gateway.domain.admin_audit import AuditAction
from gateway.features.admin_audit import AuditQuery
from gateway.store.mongo import Document
from resolvers.context import Info
from resolvers.pagination import Connection, connection, decode_cursor, page_size

MAX_ACTIONS = 50


@strawberry.type(description="One staff action: who, what, on what, when, and why (append-only, hash-chained).")
class AdminAuditEntry:
    seq: int = strawberry.field(description="Position in the log: 1, 2, 3... with no gaps.")
    action: str = strawberry.field(description="e.g. `points.grant`, `gift.update`, `partner.key_rotate`.")
    actor_role: str
    actor: str = strawberry.field(description="The token subject of the member of staff (or `cli-import`...).")
    target_kind: str
    target_id: str
    at: datetime
    details: JSON
    reason: str | None
    request_id: str | None = strawberry.field(description="The X-Request-Id of the request that did it.")
    hash: str = strawberry.field(description="sha256(previous hash ‖ this entry); the chain verify checks.")

    @classmethod
    def of(cls, doc: Document) -> AdminAuditEntry:
        return cls(
            seq=int(doc["seq"]),
            action=doc["action"],
            actor_role=doc["actorRole"],
            actor=doc["actor"],
            target_kind=doc["targetKind"],
            target_id=doc["targetId"],
            at=as_utc(doc["at"]),
            details=doc["details"],
            reason=doc.get("reason"),
            request_id=doc.get("requestId"),
            hash=doc["hash"],
        )


@strawberry.input(description="Entries matching every field given (actions: any of them); since ≤ at < until.")
class AdminAuditFilter:
    actions: list[str] | None = None
    actor: str | None = None
    target_kind: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def query(self) -> AuditQuery:
        known = {a.value for a in AuditAction}
        actions = list(dict.fromkeys(self.actions)) if self.actions is not None else None
        if actions is not None:
            if not 1 <= len(actions) <= MAX_ACTIONS:
                raise BadInput(f"actions lists 1 to {MAX_ACTIONS} actions", field="actions")
            unknown = sorted(set(actions) - known)
            if unknown:
                raise BadInput(f"unknown audit actions: {unknown}", field="actions")
        since = as_utc(self.since) if self.since is not None else None
        until = as_utc(self.until) if self.until is not None else None
        if since is not None and until is not None and until <= since:
            raise BadInput("until must be after since", field="until")
        return AuditQuery(
            actions=actions,
            actor=self.actor,
            target_kind=self.target_kind,
            target_id=self.target_id,
            since=since,
            until=until,
        )


@strawberry.type(description="Whether the log is as it was written: every entry, in order, against its hash chain.")
class AdminAuditVerification:
    intact: bool
    entries: int = strawberry.field(description="Entries the log holds (its head's sequence number).")
    broken_at: int | None = strawberry.field(
        description="The first sequence number edited, removed or out of order behind the gateway's back."
    )


def _before(cursor: str | None) -> int | None:
    value = decode_cursor(cursor)
    if value is None:
        return None
    if not value.isdigit():
        raise BadInput("after is not a valid cursor", field="after")
    return int(value)


@strawberry.type
class AdminAuditQuery:
    @strawberry.field(
        description="The admin audit log, newest first, cursor-paginated (audit:read). Unknown actions in the "
        "filter → BAD_USER_INPUT."
    )
    async def admin_audit_log(
        self,
        info: Info,
        filter: AdminAuditFilter | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Connection[AdminAuditEntry]:
        require_permission(info.context.principal, Permission.AUDIT_READ)
        size = page_size(first)
        query = filter.query() if filter is not None else AuditQuery()
        docs = await info.context.services.admin_audit.search(query, limit=size + 1, before_seq=_before(after))
        return connection([AdminAuditEntry.of(d) for d in docs], size, lambda e: str(e.seq))

    @strawberry.field(
        description="Check the whole log's hash chain (audit:read); also `loyalty-gateway audit-log verify`."
    )
    async def admin_audit_verification(self, info: Info) -> AdminAuditVerification:
        require_permission(info.context.principal, Permission.AUDIT_READ)
        report = await info.context.services.admin_audit.verification()
        return AdminAuditVerification(
            intact=report.broken_at is None, entries=report.entries, broken_at=report.broken_at
        )
