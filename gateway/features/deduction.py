"""Deduction at checkout (积分抵扣), two-phase: a hold, posted by the order's purchase or voided.

The hold itself is the ledger's (gateway/ledger/posting.py, rules in gateway/domain/holds.py);
this module owns the per-order record (gateway/store/deductions.py) and the checkout's rules:
the cap at hold time, one live deduction per order, a retry after a voided checkout,
cancelling, and releasing holds that timed out (gateway/workers/holds.py). Posting happens in
gateway/features/purchases.py, where the real order amount is known.
"""

from __future__ import annotations

import functools

from gateway.core.auth import Principal
from gateway.core.errors import BadInput, DomainError, NotFound, quote
from gateway.domain import earning as rules
from gateway.domain import holds
from gateway.domain.holds import HoldStatus
from gateway.domain.money import amount_problem
from gateway.features.purchases import ORDER_ID
from gateway.ledger import EntryKind, Idempotency, Ledger, LedgerTx, Memo, Source
from gateway.store import deductions
from gateway.store.mongo import Document

CHECKOUT = "CHECKOUT"  # the purpose of a hold made by a deduction at checkout


class _OrderHasRecord(DomainError):
    """The order already has a deduction record (found by its unique index): decide it by reading it."""

    code = "ALREADY_DEDUCTED"


class CheckoutDeductions:
    def __init__(self, ledger: Ledger, *, hold_minutes: float = 30.0) -> None:
        self.ledger = ledger
        self.hold_minutes = hold_minutes

    async def deduct(
        self, principal: Principal, member_id: str, order_id: str, order_amount: int, points: int, key: str
    ) -> Document:
        """Put ``points`` on hold for ``order_id``; ``recordPurchase`` of that order posts them
        (re-checking the cap against what was really paid), ``cancelCheckoutDeduction`` or
        the timeout releases them. One live deduction per order; a voided one may be retried."""
        if not ORDER_ID.match(order_id):
            raise BadInput("orderId must be 1 to 100 letters, digits or _.:#/-", field="orderId")
        if problem := amount_problem(order_amount):
            raise BadInput(f"orderAmount {problem}", field="orderAmount")
        idem = Idempotency.for_caller(
            principal,
            key,
            "deductPointsAtCheckout",
            memberId=member_id,
            orderId=order_id,
            orderAmount=order_amount,
            points=points,
        )

        async def work(tx: LedgerTx, *, look_first: bool) -> Document:
            try:
                value = rules.deduction(points, order_amount, tx.program.deduction)
            except ValueError as exc:
                raise BadInput(str(exc), field="points") from None
            existing = None
            if look_first:  # lock the member before reading the order's record
                await tx.member(member_id)
                existing = await deductions.for_order(tx.db, member_id, order_id, session=tx.session)
            if existing is not None and existing.get("status", HoldStatus.POSTED) != HoldStatus.VOIDED:
                raise DomainError(
                    f"Points were already deducted on order {quote(order_id)}",
                    code="ALREADY_DEDUCTED",
                    orderId=order_id,
                )
            expires_at = holds.deadline(tx.now, self.hold_minutes)
            memo = Memo(
                EntryKind.DEDUCTION_HOLD,
                f"Held for checkout on {order_id}",
                Source("ORDER", order_id),
                {"valueFen": value.value_fen, "orderAmount": order_amount},
            )
            hold = await tx.hold(member_id, points, memo, purpose=CHECKOUT, expires_at=expires_at)
            deduction: Document = {
                "memberId": member_id,
                "orderId": order_id,
                "orderAmount": order_amount,
                "points": points,
                "valueFen": value.value_fen,
                "holdId": hold["_id"],
                "status": str(HoldStatus.HELD),
                "holdExpiresAt": expires_at,
                "createdAt": tx.now,
            }
            # a retry after a voided checkout reuses the order's record, keeping the voided holds
            if existing is None:
                saved = await deductions.insert(tx.db, deduction, session=tx.session)
            else:
                saved = await deductions.reopen(tx.db, existing, deduction, session=tx.session)
            if not saved:
                if not look_first:
                    raise _OrderHasRecord("Points were already deducted on this order")
                raise DomainError("Points were already deducted on this order", code="ALREADY_DEDUCTED")
            return {
                "memberId": member_id,
                "orderId": order_id,
                "points": points,
                "valueFen": value.value_fen,
                "status": str(HoldStatus.HELD),
                "holdExpiresAt": expires_at,
                "entryIds": [hold["holdEntryId"]],
            }

        # The order's unique index on deductions says whether it already has a record, so the first
        # attempt does not look for one: a new order (nearly every checkout) saves that read. If
        # the order has a record after all (deducted already, or voided and tried again), or the
        # attempt was refused for another reason while it has one (that refusal would have come
        # second), the checked path decides, so the answer and which refusal comes first are
        # exactly what they were.
        try:
            return await self.ledger.transact(functools.partial(work, look_first=False), idempotency=idem)
        except DomainError as exc:
            if (
                not isinstance(exc, _OrderHasRecord)
                and await deductions.for_order(self.ledger.db, member_id, order_id) is None
            ):
                raise
            return await self.ledger.transact(functools.partial(work, look_first=True), idempotency=idem)

    async def cancel(self, principal: Principal, member_id: str, order_id: str) -> Document:
        """Release the points held for an abandoned checkout; repeating it is harmless."""

        async def work(tx: LedgerTx) -> Document:
            await tx.member(member_id)
            deduction = await deductions.for_order(tx.db, member_id, order_id, session=tx.session)
            if deduction is None:
                raise NotFound(f"No points were deducted on order {order_id!r}", code="DEDUCTION_NOT_FOUND")
            if "holdId" not in deduction:  # deducted before holds existed: already a spend
                raise DomainError("These points were already spent", code="HOLD_ALREADY_POSTED")
            entry = await self._void(tx, deduction, f"Checkout on {order_id} cancelled")
            return self._deduction_result(deduction, HoldStatus.VOIDED, entry)

        result = await self.ledger.transact(work)
        return {**result, "replayed": not result["entryIds"]}

    async def void_expired(self, hold: Document) -> bool:
        """The sweeper's part: release a checkout hold past its deadline. False if already settled."""

        async def work(tx: LedgerTx) -> Document:
            await tx.member(hold["memberId"])
            deduction = await deductions.for_hold(tx.db, hold["_id"], session=tx.session)
            if deduction is None:
                raise LookupError(f"checkout hold {hold['_id']!r} has no deduction")
            entry = await self._void(tx, deduction, f"Checkout on {deduction['orderId']} timed out")
            return {"voided": entry is not None}

        try:
            return bool((await self.ledger.transact(work))["voided"])
        except DomainError:  # posted meanwhile
            return False

    async def void_checkout_hold(self, tx: LedgerTx, hold: Document, reason: str) -> bool:
        """Release a checkout hold inside the caller's transaction (a freeze); False if already settled."""
        deduction = await deductions.for_hold(tx.db, hold["_id"], session=tx.session)
        if deduction is None:
            raise LookupError(f"checkout hold {hold['_id']!r} has no deduction")
        return await self._void(tx, deduction, reason) is not None

    async def _void(self, tx: LedgerTx, deduction: Document, reason: str) -> Document | None:
        entry = await tx.void_hold(
            deduction["holdId"], Memo(EntryKind.DEDUCTION_VOID, reason, Source("ORDER", deduction["orderId"]))
        )
        if entry is not None:
            await deductions.settle(tx.db, deduction, str(HoldStatus.VOIDED), {"settledAt": tx.now}, session=tx.session)
        return entry

    @staticmethod
    def _deduction_result(deduction: Document, status: HoldStatus, entry: Document | None) -> Document:
        return {
            "memberId": deduction["memberId"],
            "orderId": deduction["orderId"],
            "points": deduction["points"],
            "valueFen": deduction["valueFen"],
            "status": str(status),
            "holdExpiresAt": deduction.get("holdExpiresAt"),
            "entryIds": [entry["_id"]] if entry else [],
        }
