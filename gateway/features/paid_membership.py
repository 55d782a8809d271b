"""Paid membership (付费会员): terms bought as a plan, renewed, ended; recorded by an admin.

The membership is sold outside the gateway (the shop's checkout); the shop's
backend records each purchase here with an idempotency key, so a retried call
never extends a term twice. The member's term lives on the member document and
each change is appended to its history. See gateway/domain/membership.py.
"""

from __future__ import annotations

from gateway.core.auth import Principal
from gateway.core.clock import Clock
from gateway.core.errors import BadInput, DomainError
from gateway.domain.membership import Plan, Term, end_now, renew
from gateway.features.members import paid_term
from gateway.ledger import Idempotency, Ledger, LedgerTx
from gateway.store import paid_memberships
from gateway.store.mongo import Database, Document


def term_document(term: Term) -> Document:
    return {"plan": str(term.plan), "startsAt": term.starts_at, "months": term.months, "endsAt": term.ends_at}


class PaidMemberships:
    def __init__(self, db: Database, clock: Clock, ledger: Ledger) -> None:
        self.db = db
        self.clock = clock
        self.ledger = ledger

    async def record(self, principal: Principal, member_id: str, plan: Plan, key: str) -> Document:
        """A bought plan: extends a running term from its end, or starts a new one now."""
        idem = Idempotency.for_caller(principal, key, "recordPaidMembership", memberId=member_id, plan=str(plan))

        async def work(tx: LedgerTx) -> Document:
            member = await tx.member(member_id)
            before = paid_term(member, tx.program.timezone)
            after = renew(before, plan, tx.now, tx.program.timezone)
            action = "RENEWED" if before is not None and before.active_at(tx.now) else "STARTED"
            await self._save(tx, member_id, after, action, principal, None)
            return {"memberId": member_id}

        return await self.ledger.transact(work, idempotency=idem)

    async def end(self, principal: Principal, member_id: str, reason: str | None) -> Document:
        """End a running term now (a refunded or revoked membership)."""
        if reason is not None and len(reason) > 200:
            raise BadInput("reason must be at most 200 characters", field="reason")

        async def work(tx: LedgerTx) -> Document:
            member = await tx.member(member_id)
            term = paid_term(member, tx.program.timezone)
            if term is None or not term.active_at(tx.now):
                raise DomainError("The member holds no running paid membership", code="NOT_A_PAID_MEMBER")
            await self._save(tx, member_id, end_now(term, tx.now), "ENDED", principal, reason)
            return {"memberId": member_id}

        return await self.ledger.transact(work)

    async def _save(
        self, tx: LedgerTx, member_id: str, term: Term, action: str, principal: Principal, reason: str | None
    ) -> None:
        event = {
            "action": action,
            **term_document(term),
            "at": tx.now,
            "by": f"{principal.role.value}:{principal.subject}",
            "reason": reason,
        }
        await paid_memberships.save_term(tx.db, member_id, term_document(term), event, session=tx.session)
