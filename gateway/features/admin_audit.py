"""Recording staff actions in the append-only admin audit log, and reading it back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.core.auth import Principal
from gateway.core.clock import Clock
from gateway.core.logs import current_request_id
from gateway.domain.admin_audit import AuditAction, AuditEntry, verify_chain
from gateway.store import admin_audit as store
from gateway.store.mongo import Database, Document


@dataclass(frozen=True)
class AuditQuery:
    actions: list[str] | None = None
    actor: str | None = None
    target_kind: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


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
        entries = [doc async for doc in store.all_in_order(self.db)]
        return verify_chain(entries, await store.head(self.db))
