"""Recording staff actions in the append-only admin audit log, and reading it back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from gateway.core.auth import Principal
from gateway.core.clock import Clock
from gateway.core.logs import current_request_id
from gateway.domain.admin_audit import AuditAction, AuditEntry, ChainCheck
from gateway.store import admin_audit as store
from gateway.store.mongo import Database, Document

T = TypeVar("T")
# Records one staff action's entry inside the action's transaction: (session, target id, details).
Recorder = Callable[[Any, str, Mapping[str, Any]], Awaitable[Any]]


async def audited(db: Database, audit: Recorder | None, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(session)``: with ``audit`` in one transaction (the change and the entry it
    records commit together, or neither), without it as before (session None)."""
    if audit is None:
        return await work(None)
    return await db.transaction(work)


@dataclass(frozen=True)
class AuditQuery:
    actions: list[str] | None = None
    actor: str | None = None
    target_kind: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Verification:
    entries: int  # the log's length by its head
    broken_at: int | None  # the first sequence number edited, removed or out of order; None: intact


class AdminAudit:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def entry(
        self,
        actor: Principal,
        action: AuditAction,
        target_kind: str,
        target_id: str,
        details: Mapping[str, Any] | None = None,
        *,
        reason: str | None = None,
    ) -> AuditEntry:
        return AuditEntry(
            action=action,
            actor_role=actor.role.value,
            actor=actor.subject,
            target_kind=target_kind,
            target_id=target_id,
            at=self.clock.now(),
            details=details or {},
            reason=reason,
            request_id=current_request_id(),
        )

    async def record(
        self,
        actor: Principal,
        action: AuditAction,
        target_kind: str,
        target_id: str,
        details: Mapping[str, Any] | None = None,
        *,
        reason: str | None = None,
        session: Any = None,
    ) -> Document:
        """Append one entry. Pass the action's own ``session`` so the entry commits (or not) with it."""
        entry = self.entry(actor, action, target_kind, target_id, details, reason=reason)
        if session is not None:
            return await store.append(self.db, entry, session)
        return await self.db.transaction(lambda s: store.append(self.db, entry, s))

    def recorder(
        self, actor: Principal, action: AuditAction, target_kind: str, *, reason: str | None = None
    ) -> Recorder:
        """What a feature calls, in its own transaction, once it knows the target and the details."""

        async def record(session: Any, target_id: str, details: Mapping[str, Any]) -> None:
            await self.record(actor, action, target_kind, target_id, details, reason=reason, session=session)

        return record

    async def search(self, query: AuditQuery, *, limit: int, before_seq: int | None = None) -> list[Document]:
        return await store.find(
            self.db,
            limit=limit,
            actions=query.actions,
            actor=query.actor,
            target_kind=query.target_kind,
            target_id=query.target_id,
            since=query.since,
            until=query.until,
            before_seq=before_seq,
        )

    async def verify(self) -> int | None:
        """The sequence number where the chain first breaks, or None when every entry is intact."""
        return (await self.verification()).broken_at

    async def verification(self) -> Verification:
        """Stream the whole log through the hash chain (the head read first: entries appended
        meanwhile are beyond it and not judged)."""
        head = await store.head(self.db)
        check = ChainCheck()
        async for doc in store.all_in_order(self.db, up_to=head[0] if head else 0):
            if not check.feed(doc):
                break
        broken_at = check.finish(head)
        return Verification(entries=head[0] if head else 0, broken_at=broken_at)
