"""Staff actions on a member account (issue 14 §1): freeze and unfreeze, PIPL export and erasure.

Each runs in one transaction with its admin audit entry, so a refused or failed action leaves
nothing behind, not even the entry. The rules are in gateway/domain/member_status.py (what a
freeze stops and what it lets through) and gateway/domain/privacy.py (what an export holds and
what an erasure touches).
"""

from __future__ import annotations

from typing import Any

from gateway.core.auth import Principal
from gateway.core.clock import Clock, as_utc
from gateway.core.errors import BadInput, DomainError
from gateway.domain.admin_audit import AuditAction
from gateway.domain.member_status import MemberStatus, StatusRefusal, freeze, status_of, unfreeze, valid_reason
from gateway.domain.privacy import erased_profile, erasure_refusal, export_document
from gateway.features.admin_audit import AdminAudit
from gateway.features.deduction import CHECKOUT, CheckoutDeductions
from gateway.features.members import Members
from gateway.features.redemptions import REDEMPTION, OrderStatus, Redemptions
from gateway.ledger import EntryKind, Ledger, LedgerTx, Memo, Source
from gateway.store import holds as holds_store
from gateway.store import members as members_store
from gateway.store import privacy as privacy_store
from gateway.store import redemptions as orders_store
from gateway.store.mongo import Database, Document

MEMBER = "member"  # the audit target kind


def reason_of(reason: str) -> str:
    try:
        return valid_reason(reason)
    except ValueError as exc:
        raise BadInput(str(exc), field="reason") from None


def refused(exc: StatusRefusal) -> DomainError:
    return DomainError(str(exc), code=exc.code)


class MemberAccounts:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        ledger: Ledger,
        members: Members,
        audit: AdminAudit,
        deductions: CheckoutDeductions,
        redemptions: Redemptions,
    ) -> None:
        self.db = db
        self.clock = clock
        self.ledger = ledger
        self.members = members
        self.audit = audit
        self.deductions = deductions
        self.redemptions = redemptions

    # -- freeze ---------------------------------------------------------------------------------

    async def freeze(self, who: Principal, member_id: str, reason: str) -> Document:
        """Freeze the account: no earning, no spending; holds in flight are released (checkout
        deductions voided, unpaid orders cancelled with their stock) in the same transaction."""
        why = reason_of(reason)

        async def work(tx: LedgerTx) -> Document:
            member = await tx.member(member_id)
            try:
                status = freeze(status_of(member))
            except StatusRefusal as exc:
                raise refused(exc) from None
            voided, cancelled = 0, 0
            note = f"Member frozen: {why}"
            for hold in await holds_store.open_holds(tx.db, member_id, session=tx.session):
                if hold["purpose"] == CHECKOUT:
                    voided += await self.deductions.void_checkout_hold(tx, hold, note)
                elif hold["purpose"] == REDEMPTION:
                    cancelled += await self.redemptions.cancel_unpaid_in(tx, hold, note, f"staff:{who.subject}")
            fields = {"frozenAt": tx.now, "freezeReason": why, "frozenBy": f"{who.role.value}:{who.subject}"}
            await members_store.set_status(tx.db, member_id, str(status), fields, session=tx.session)
            details = {"voidedCheckoutHolds": voided, "cancelledUnpaidOrders": cancelled}
            await self.audit.record(
                who, AuditAction.MEMBER_FREEZE, MEMBER, member_id, details, reason=why, session=tx.session
            )
            return {"memberId": member_id, **details}

        return await self.ledger.transact(work)

    async def unfreeze(self, who: Principal, member_id: str, reason: str) -> Document:
        why = reason_of(reason)

        async def work(tx: LedgerTx) -> Document:
            member = await tx.member(member_id)
            try:
                status = unfreeze(status_of(member))
            except StatusRefusal as exc:
                raise refused(exc) from None
            await members_store.set_status(
                tx.db,
                member_id,
                str(status),
                {"unfrozenAt": tx.now},
                unset=["frozenAt", "freezeReason", "frozenBy"],
                session=tx.session,
            )
            frozen_for = (tx.now - as_utc(member["frozenAt"])).total_seconds() if member.get("frozenAt") else 0
            await self.audit.record(
                who,
                AuditAction.MEMBER_UNFREEZE,
                MEMBER,
                member_id,
                {"frozenSeconds": int(frozen_for), "freezeReason": member.get("freezeReason")},
                reason=why,
                session=tx.session,
            )
            return {"memberId": member_id}

        return await self.ledger.transact(work)

    # -- PIPL -----------------------------------------------------------------------------------

    async def export(self, who: Principal, member_id: str, reason: str) -> dict[str, Any]:
        """Everything about the member as one JSON-able document; the export itself is audited."""
        why = reason_of(reason)
        member = await self.members.get(member_id)
        await self.audit.sealed()  # the staff actions about them as the log reads them (sealed)
        sections = await privacy_store.member_sections(self.db, member_id)
        referred = await privacy_store.referred_count(self.db, member_id)
        now = self.clock.now()
        document = export_document(
            member,
            sections,
            referred_members=referred,
            exported_at=now,
            hidden_member_fields=privacy_store.MEMBER_HIDDEN,
        )
        counts = {name: len(docs) for name, docs in sections.items()}
        await self.audit.record(who, AuditAction.MEMBER_EXPORT, MEMBER, member_id, {"sections": counts}, reason=why)
        return document

    async def erase(self, who: Principal, member_id: str, reason: str) -> Document:
        """Close the account and pseudonymize it (gateway/domain/privacy.py); one transaction."""
        why = reason_of(reason)

        async def work(tx: LedgerTx) -> Document:
            member = await tx.member(member_id)
            if status_of(member) is MemberStatus.CLOSED:
                raise DomainError("The account is already closed and erased", code="MEMBER_CLOSED")
            holds = await holds_store.open_holds(tx.db, member_id, session=tx.session)
            unfinished = await orders_store.count_unfinished(
                tx.db, member_id, [OrderStatus.AWAITING_PAYMENT, OrderStatus.PLACED], session=tx.session
            )
            if problem := erasure_refusal(len(holds), unfinished):
                raise DomainError(problem, code="ACCOUNT_BUSY", openHolds=len(holds), unfinishedOrders=unfinished)
            entry = await tx.forfeit(
                member_id,
                Memo(
                    EntryKind.EXPIRE,
                    "Account closed at the member's request: points forfeited",
                    Source("OPERATOR", who.subject),
                    {"erasure": True},
                ),
            )
            forfeited = -entry["points"] if entry else 0
            await members_store.erase_profile(tx.db, member_id, erased_profile(tx.now), session=tx.session)
            await members_store.set_status(tx.db, member_id, str(MemberStatus.CLOSED), {}, session=tx.session)
            changed = await privacy_store.scrub_member_copies(tx.db, member_id, session=tx.session)
            details = {"forfeitedPoints": forfeited, "changed": changed}
            await self.audit.record(
                who, AuditAction.MEMBER_ERASE, MEMBER, member_id, details, reason=why, session=tx.session
            )
            return {"memberId": member_id, **details}

        return await self.ledger.transact(work)
