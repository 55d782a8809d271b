"""Hand grants (送积分) and take-backs by staff, under support's limits and the two-person rule.

``grant`` posts a grant at once, or refuses it (``GRANT_LIMIT_EXCEEDED``: support above its
limits), or, above the approval threshold, records a pending grant request instead of posting.
``approve`` posts a pending request exactly once (a second person, never the requester);
``reject`` closes it. Each step appends its admin-audit entry in its own transaction. The rules
are ``gateway.domain.grant_approval``; the limits come from settings
(``LOYALTY_SUPPORT_GRANT_LIMIT_POINTS``...).

Other kinds of request (a campaign's large segment grant, say) can ride on the same approval:
``register_kind`` names the function that carries out an approved request of that kind inside
the approval's transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from gateway.core.auth import Principal
from gateway.core.clock import Clock
from gateway.core.errors import BadInput, DomainError, NotFound, quote
from gateway.core.permissions import Permission, allows
from gateway.domain import calendar
from gateway.domain.admin_audit import AuditAction
from gateway.domain.grant_approval import (
    GrantAsk,
    GrantInvalid,
    GrantPolicy,
    LimitExceeded,
    RequestStatus,
    expiry,
    limit_exceeded,
    needs_approval,
    review_refusal,
    status_at,
)
from gateway.features.admin_audit import AdminAudit
from gateway.ledger import EntryKind, Idempotency, Ledger, LedgerTx, Memo, Source
from gateway.store import grant_requests as store
from gateway.store import members as members_store
from gateway.store.mongo import Database, Document

POINTS = "points"  # the kind of request grantPoints makes
POSTED = "POSTED"
PENDING_APPROVAL = "PENDING_APPROVAL"

Executor = Callable[[LedgerTx, Document, Principal], Awaitable[Document]]


class GrantLimitExceeded(DomainError):
    code = "GRANT_LIMIT_EXCEEDED"


def grant_request_not_found(request_id: str) -> NotFound:
    return NotFound(f"Grant request {quote(request_id)} not found", code="GRANT_REQUEST_NOT_FOUND")


def _actor(principal: Principal) -> Document:
    return {"role": principal.role.value, "subject": principal.subject}


async def post_grant(tx: LedgerTx, member_ids: list[str], points: int, memo: Memo) -> list[Any]:
    """Give (or take back, when negative) ``points`` to each member: all or none."""
    entry_ids = []
    for member_id in member_ids:
        if points > 0:
            entry = await tx.earn(member_id, points, memo)
        else:
            entry = await tx.spend(member_id, -points, memo)
        entry_ids.append(entry["_id"])
    return entry_ids


def _memo(points: int, reason: str, requested_by: str, **extra: Any) -> Memo:
    kind = EntryKind.GRANT if points > 0 else EntryKind.ADJUSTMENT
    return Memo(kind, reason, Source("OPERATOR", requested_by), extra)


class Grants:
    def __init__(self, db: Database, clock: Clock, ledger: Ledger, audit: AdminAudit, policy: GrantPolicy) -> None:
        self.db = db
        self.clock = clock
        self.ledger = ledger
        self.audit = audit
        self.policy = policy
        self.executors: dict[str, Executor] = {POINTS: self._execute_points}

    def register_kind(self, kind: str, executor: Executor) -> None:
        """Carry out approved requests of ``kind`` with ``executor(tx, request, approver)``."""
        self.executors[kind] = executor

    # -- grantPoints ---------------------------------------------------------------------

    async def grant(self, principal: Principal, member_ids: list[str], points: int, reason: str, key: str) -> Document:
        """Post the grant, refuse it (support's limits), or file it for a second person's approval."""
        try:
            ask = GrantAsk.parse(member_ids, points, reason)
        except GrantInvalid as exc:
            raise BadInput(str(exc), field=exc.field) from None
        ids = list(ask.member_ids)
        idem = Idempotency.for_caller(
            principal, key, "grantPoints", memberIds=sorted(ids), points=ask.points, reason=ask.reason
        )
        limited = not allows(principal, Permission.GRANTS_APPROVE)
        self._check_limits(limited, ask.size, 0)  # per grant: refused before anything is read or filed
        if needs_approval(self.policy, ask.size):
            return await self.ledger.transact(lambda tx: self._file(tx, principal, ask), idempotency=idem)

        async def work(tx: LedgerTx) -> Document:
            if limited:
                day = calendar.local_date(tx.now, tx.program.timezone).isoformat()
                used = await store.usage(tx.db, principal.subject, day, tx.session)
                self._check_limits(limited, ask.size, used)
                await store.add_usage(tx.db, principal.subject, day, ask.size, tx.session)
            entry_ids = await post_grant(tx, ids, ask.points, _memo(ask.points, ask.reason, principal.subject))
            action = AuditAction.POINTS_GRANT if ask.points > 0 else AuditAction.POINTS_ADJUST
            await self.audit.record(
                principal,
                action,
                *_target(ids),
                {"memberIds": ids, "points": ask.points, "total": ask.size, "entryIds": entry_ids},
                reason=ask.reason,
                session=tx.session,
            )
            return {"memberIds": ids, "points": ask.points, "entryIds": entry_ids, "status": POSTED}

        return await self.ledger.transact(work, idempotency=idem)

    def _check_limits(self, limited: bool, size: int, used: int) -> None:
        exceeded = limit_exceeded(self.policy, limited=limited, size=size, used_today=used)
        if exceeded is LimitExceeded.PER_GRANT:
            raise GrantLimitExceeded(
                f"A grant may move at most {self.policy.per_grant} points for this role; this one moves {size}",
                limit="PER_GRANT",
                limitPoints=self.policy.per_grant,
                points=size,
            )
        if exceeded is LimitExceeded.PER_DAY:
            raise GrantLimitExceeded(
                f"This grant would pass today's limit of {self.policy.per_day} points "
                f"({used} already moved by hand today)",
                limit="PER_DAY",
                limitPoints=self.policy.per_day,
                usedToday=used,
                points=size,
            )

    async def _file(self, tx: LedgerTx, principal: Principal, ask: GrantAsk) -> Document:
        for member_id in ask.member_ids:
            if not await members_store.exists(tx.db, member_id, session=tx.session):
                raise NotFound(f"Member {quote(member_id)} not found", code="MEMBER_NOT_FOUND")
        request = await self.file_request(
            tx,
            principal,
            POINTS,
            {"memberIds": list(ask.member_ids), "points": ask.points},
            size=ask.size,
            reason=ask.reason,
        )
        return {
            "memberIds": list(ask.member_ids),
            "points": ask.points,
            "entryIds": [],
            "status": PENDING_APPROVAL,
            "requestId": request["_id"],
        }

    async def file_request(
        self, tx: LedgerTx, principal: Principal, kind: str, payload: Document, *, size: int, reason: str
    ) -> Document:
        """Record a request for a second person's approval (and its audit entry) in ``tx``."""
        if kind not in self.executors:
            raise ValueError(f"no executor registered for grant requests of kind {kind!r}")
        doc = {
            "_id": "grq_" + secrets.token_hex(8),
            "kind": kind,
            **payload,
            "size": size,
            "reason": reason,
            "status": str(RequestStatus.PENDING),
            "requestedBy": _actor(principal),
            "requestedAt": tx.now,
            "expiresAt": expiry(tx.now, self.policy),
        }
        await store.insert_request(tx.db, doc, tx.session)
        await self.audit.record(
            principal,
            AuditAction.GRANT_REQUESTED,
            "grantRequest",
            doc["_id"],
            {"kind": kind, **payload, "total": size, "expiresAt": doc["expiresAt"]},
            reason=reason,
            session=tx.session,
        )
        return doc

    # -- the second person ----------------------------------------------------------------

    async def approve(self, principal: Principal, request_id: str, note: str | None = None) -> Document:
        """Carry out a pending request, exactly once, as someone other than its requester."""

        async def work(tx: LedgerTx) -> Document:
            request = await self._reviewable(tx, principal, request_id, approve=True)
            result = await self.executors[request["kind"]](tx, request, principal)
            decided = await store.decide(
                tx.db,
                request_id,
                {
                    "status": str(RequestStatus.APPROVED),
                    "decidedBy": _actor(principal),
                    "decidedAt": tx.now,
                    "note": note,
                    "result": result,
                },
                tx.session,
            )
            if decided is None:  # decided meanwhile; the conflict retry normally sees it first
                raise _refused("GRANT_REQUEST_NOT_PENDING", request_id)
            await self.audit.record(
                principal,
                AuditAction.GRANT_APPROVED,
                "grantRequest",
                request_id,
                {"kind": request["kind"], "requestedBy": request["requestedBy"], **result},
                reason=note,
                session=tx.session,
            )
            return {"requestId": request_id}

        await self.ledger.transact(work)
        return await self.get(request_id)

    async def reject(self, principal: Principal, request_id: str, reason: str) -> Document:
        """Close a pending request without carrying it out (its requester may withdraw it so)."""
        reason = reason.strip()
        if not 1 <= len(reason) <= 200:
            raise BadInput("reason must be 1 to 200 characters", field="reason")

        async def work(tx: LedgerTx) -> Document:
            request = await self._reviewable(tx, principal, request_id, approve=False)
            changes = {
                "status": str(RequestStatus.REJECTED),
                "decidedBy": _actor(principal),
                "decidedAt": tx.now,
                "note": reason,
            }
            if await store.decide(tx.db, request_id, changes, tx.session) is None:
                raise _refused("GRANT_REQUEST_NOT_PENDING", request_id)
            await self.audit.record(
                principal,
                AuditAction.GRANT_REJECTED,
                "grantRequest",
                request_id,
                {"kind": request["kind"], "requestedBy": request["requestedBy"]},
                reason=reason,
                session=tx.session,
            )
            return {"requestId": request_id}

        await self.ledger.transact(work)
        return await self.get(request_id)

    async def _reviewable(self, tx: LedgerTx, principal: Principal, request_id: str, *, approve: bool) -> Document:
        request = await store.find_request(tx.db, request_id, session=tx.session)
        if request is None:
            raise grant_request_not_found(request_id)
        refusal = review_refusal(
            stored=RequestStatus(request["status"]),
            expires_at=request["expiresAt"],
            requested_by=request["requestedBy"]["subject"],
            reviewer=principal.subject,
            approve=approve,
            now=tx.now,
        )
        if refusal is not None:
            raise _refused(str(refusal), request_id)
        return request

    async def _execute_points(self, tx: LedgerTx, request: Document, approver: Principal) -> Document:
        memo = _memo(
            request["points"],
            request["reason"],
            request["requestedBy"]["subject"],
            grantRequest=request["_id"],
            approvedBy=approver.subject,
        )
        entry_ids = await post_grant(tx, request["memberIds"], request["points"], memo)
        return {"memberIds": request["memberIds"], "points": request["points"], "entryIds": entry_ids}

    # -- reading ----------------------------------------------------------------------------

    async def get(self, request_id: str) -> Document:
        doc = await store.find_request(self.db, request_id)
        if doc is None:
            raise grant_request_not_found(request_id)
        return self.view(doc)

    def view(self, doc: Document) -> Document:
        """The request as it stands now (a pending one past its deadline reads EXPIRED)."""
        status = status_at(RequestStatus(doc["status"]), doc["expiresAt"], self.clock.now())
        return {**doc, "status": str(status)}

    async def page(
        self,
        *,
        status: str | None,
        requested_by: str | None,
        member_id: str | None,
        before: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Document]:
        docs = await store.page(
            self.db,
            status=status,
            now=self.clock.now(),
            requested_by=requested_by,
            member_id=member_id,
            before=before,
            limit=limit,
        )
        return [self.view(doc) for doc in docs]


def _refused(code: str, request_id: str) -> DomainError:
    messages = {
        "SECOND_APPROVER_REQUIRED": "A grant request is approved by someone other than its requester",
        "GRANT_REQUEST_NOT_PENDING": "This grant request was already decided",
        "GRANT_REQUEST_EXPIRED": "This grant request expired before anyone decided it",
    }
    return DomainError(messages[code], code=code, requestId=request_id)


def _target(member_ids: list[str]) -> tuple[str, str]:
    """An audit entry's target: the member, or for a grant to several the comma-joined ids."""
    return ("member", member_ids[0]) if len(member_ids) == 1 else ("members", ",".join(member_ids))
