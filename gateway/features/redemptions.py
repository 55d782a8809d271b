"""Redemption orders: points (and stock) for a gift, all in one ledger transaction.

``redeem`` takes stock with a conditional ``$inc`` first (never below zero: concurrent
buyers meet as a write conflict at once and the loser retries against the new stock),
checks eligibility at the instant of the transaction (a refusal aborts it, stock
included), spends the points soonest-expiring lots first and inserts the order. Either all of it commits or
none of it does: no sale without a charge, no charge without an order.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pymongo.errors import DuplicateKeyError

from gateway.core.auth import Principal
from gateway.core.errors import BadInput, DomainError, NotFound, quote
from gateway.core.permissions import Permission, allows
from gateway.domain.catalog import Reason, price_at
from gateway.domain.holds import HoldRefusal, deadline
from gateway.domain.member_status import REFUSAL_CODE, REFUSAL_MESSAGE
from gateway.features.admin_audit import Recorder, audited
from gateway.features.catalog import eligibilities, gift_not_found, rules_of
from gateway.features.coupons import Coupons, PoolShort, is_virtual
from gateway.ledger import EntryKind, Idempotency, InsufficientPoints, Ledger, LedgerTx, Memo, Source
from gateway.store import gifts
from gateway.store import redemptions as orders
from gateway.store.mongo import Database, Document

MAX_QUANTITY = 1000
REDEMPTION = "REDEMPTION"  # the purpose of a hold made by a points + cash order awaiting payment
PAYMENT_TIMEOUT_REASON = "Payment not received in time"
REASON_MESSAGES = {
    **{Reason(REFUSAL_CODE[status]): message for status, message in REFUSAL_MESSAGE.items()},
    Reason.NOT_LISTED: "This gift is not on sale now",
    Reason.OUT_OF_STOCK: "This gift is out of stock",
    Reason.TIER_TOO_LOW: "The member's tier may not redeem this gift",
    Reason.LIMIT_REACHED: "The redemption limit for this gift is reached",
    Reason.INSUFFICIENT_POINTS: "The member does not have enough available points",
}


class OrderStatus(StrEnum):
    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    PLACED = "PLACED"
    FULFILLED = "FULFILLED"
    CANCELLED = "CANCELLED"


def redemption_not_found(order_id: str) -> NotFound:
    return NotFound(f"Redemption {quote(order_id)} not found", code="REDEMPTION_NOT_FOUND")


def invalid_state(order: Document, action: str) -> DomainError:
    return DomainError(
        f"A {order['status'].lower()} redemption cannot be {action}", code="INVALID_STATE", status=order["status"]
    )


def refused(reason: Reason) -> DomainError:
    if reason is Reason.INSUFFICIENT_POINTS:
        return InsufficientPoints(REASON_MESSAGES[reason])
    return DomainError(REASON_MESSAGES[reason], code=str(reason))


ORDER_ID = re.compile(r"red_[0-9a-f]{24,40}")
_order_counter = itertools.count(secrets.randbelow(1 << 20))


def new_order_id() -> str:
    """Ids sort in creation order (a member's list pages in it) but cannot be guessed.

    Seconds (8 hex, as an ObjectId starts, so older ids sort the same), milliseconds (3),
    a per-process counter (6) for order within a millisecond, then 64 random bits: knowing
    when an order was placed, or another order's id, does not give this one away.
    """
    now = time.time()
    seconds, millis = int(now), int(now * 1000) % 1000
    return f"red_{seconds:08x}{millis:03x}{next(_order_counter) % (1 << 24):06x}{secrets.token_hex(8)}"


@dataclass(frozen=True)
class RedeemRequest:
    member_id: str
    gift_id: str
    quantity: int
    idempotency_key: str
    cash_paid: int = 0

    def validated(self) -> RedeemRequest:
        if not 1 <= self.quantity <= MAX_QUANTITY:
            raise BadInput(f"quantity must be 1 to {MAX_QUANTITY}", field="quantity")
        if self.cash_paid < 0:
            raise BadInput("cashPaid cannot be negative", field="cashPaid")
        return self


class Redemptions:
    def __init__(
        self, db: Database, ledger: Ledger, *, payment_minutes: float = 30.0, coupons: Coupons | None = None
    ) -> None:
        self.db = db
        self.ledger = ledger
        self.payment_minutes = payment_minutes
        self._coupon_pools = coupons

    @property
    def coupons(self) -> Coupons:
        """Virtual gifts' code pools (``gateway.features.coupons``)."""
        if self._coupon_pools is None:
            raise RuntimeError("this Redemptions was built without coupon pools")
        return self._coupon_pools

    async def get(self, order_id: str) -> Document:
        doc = await orders.find(self.db, order_id)
        if doc is None:
            raise redemption_not_found(order_id)
        return doc

    async def redeem(self, principal: Principal, request: RedeemRequest) -> Document:
        """Place an order; a replay of the same idempotency key returns the original order."""
        req = request.validated()
        placed: Document = {}

        async def work(tx: LedgerTx) -> Document:
            # Take the stock first: the gift is the contended document, so a loser of the race
            # meets its write conflict now, before doing the rest of the work, and retries.
            gift = await gifts.take_stock(tx.db, req.gift_id, req.quantity, tx.now, session=tx.session)
            taken = gift is not None
            if gift is None:
                gift = await gifts.find(tx.db, req.gift_id, session=tx.session)
                if gift is None:
                    raise gift_not_found(req.gift_id)
            rules = rules_of(gift)
            if taken and not req.cash_paid:  # a points-only order: its spend can go with the member's lock
                await tx.lock_for_spend(req.member_id, price_at(rules, tx.now).points * req.quantity)
            member = await tx.member(req.member_id)
            tx.refuse_inactive(member)  # a frozen member's order is refused as such, before any other reason
            verdicts = await eligibilities(
                tx.db,
                member,
                [gift],
                tx.program,
                tx.now,
                quantity=req.quantity,
                session=tx.session,
                rules={gift["_id"]: rules},
            )
            verdict = verdicts[req.gift_id]
            if verdict.reason is not None:
                raise refused(verdict.reason)  # aborts the transaction: the stock taken goes back
            if not taken:
                raise refused(Reason.OUT_OF_STOCK)
            price = price_at(rules, tx.now)
            if req.cash_paid != price.cash * req.quantity:
                raise BadInput(
                    f"cashPaid must be {price.cash * req.quantity} fen for this order",
                    field="cashPaid",
                    expected=price.cash * req.quantity,
                )
            order_id = new_order_id()
            points = price.points * req.quantity
            order: Document = {
                "_id": order_id,
                "memberId": req.member_id,
                "giftId": req.gift_id,
                "giftName": gift["name"],
                "quantity": req.quantity,
                "unitPoints": price.points,
                "points": points,
                "cashDue": req.cash_paid,
                "cashPaid": 0,
                "onOffer": price.on_offer,
                "placedBy": f"{principal.role.value}:{principal.subject}",
                "createdAt": tx.now,
                "updatedAt": tx.now,
            }
            if is_virtual(gift):  # a coupon: its codes are taken now, in this transaction
                order |= await self.coupons.assign(
                    tx.db, tx.session, tx.now, gift, req.quantity, order_id, req.member_id
                )
            reason = f"Redeemed {req.quantity} × {gift['name']}"
            if req.cash_paid:  # points + cash: reserve the points and the stock until the cash is paid
                due = deadline(tx.now, self.payment_minutes)
                hold = await tx.hold(
                    req.member_id,
                    points,
                    Memo(
                        EntryKind.REDEMPTION_HOLD,
                        f"{reason}: held until the cash part is paid",
                        Source("REDEMPTION", order_id),
                        {"giftId": req.gift_id},
                    ),
                    purpose=REDEMPTION,
                    expires_at=due,
                )
                order |= {"status": str(OrderStatus.AWAITING_PAYMENT), "holdId": hold["_id"], "paymentDueAt": due}
            else:
                entry = await tx.spend(
                    req.member_id,
                    points,
                    Memo(EntryKind.REDEMPTION, reason, Source("REDEMPTION", order_id), {"giftId": req.gift_id}),
                )
                order |= {"status": str(OrderStatus.PLACED), "spendEntryId": entry["_id"]}
                if is_virtual(gift):  # the member has the code at once: nothing to ship
                    order |= Coupons.fulfilled(order, tx.now)
            await orders.insert(tx.db, order, session=tx.session)
            placed.clear()
            placed.update(order)  # the last attempt's order is the one that commits
            return {"redemptionId": order_id}

        idempotency = Idempotency.for_caller(
            principal,
            req.idempotency_key,
            "redeemGift",
            memberId=req.member_id,
            giftId=req.gift_id,
            quantity=req.quantity,
            cashPaid=req.cash_paid,
        )
        try:
            result = await self.ledger.transact(work, idempotency=idempotency)
        except PoolShort:  # stock counted codes that expired since the last sweep: set it right now
            await self.coupons.expire_due(req.gift_id)
            raise
        if result.get("replayed") or placed.get("_id") != result["redemptionId"]:
            return await self.get(result["redemptionId"])  # a replay: the order as it stands now
        return orders.as_stored(self.db, placed)  # just committed: the order in hand, not read again

    async def fulfil(
        self, order_id: str, *, carrier: str | None, tracking_number: str | None, audit: Recorder | None = None
    ) -> Document:
        """Placed → fulfilled (shipped); anything else is INVALID_STATE."""
        await self.get(order_id)
        now = self.ledger.clock.now()
        shipment = {"carrier": carrier, "trackingNumber": tracking_number}
        shipped = {"fulfilledAt": now, "updatedAt": now, "shipment": shipment}

        async def work(session: Any) -> bool:
            moved = await orders.transition(
                self.db, order_id, OrderStatus.PLACED, OrderStatus.FULFILLED, shipped, session=session
            )
            if moved and audit is not None:
                await audit(session, order_id, {"shipment": shipment})
            return moved

        if not await audited(self.db, audit, work):
            raise invalid_state(await self.get(order_id), "fulfilled")
        return await self.get(order_id)

    async def confirm_payment(
        self, principal: Principal, order_id: str, reference: str, amount: int, *, audit: Recorder | None = None
    ) -> Document:
        """A trusted caller (admin, payments service) reports the cash part paid: the held
        points are spent and the order is PLACED. Repeating it with the same reference is harmless."""
        reference = reference.strip()
        if not 1 <= len(reference) <= 200:
            raise BadInput("paymentReference must be 1 to 200 characters", field="paymentReference")

        async def work(tx: LedgerTx) -> Document:
            order = await self._locked(tx, order_id)
            if order.get("paymentReference") == reference:
                return {"redemptionId": order_id}  # already confirmed with this payment
            if order["status"] != OrderStatus.AWAITING_PAYMENT:
                raise invalid_state(order, "paid")
            if amount != order["cashDue"]:
                raise DomainError(
                    f"This order's cash part is {order['cashDue']} fen, {amount} was reported",
                    code="PAYMENT_AMOUNT_MISMATCH",
                    expected=order["cashDue"],
                )
            if await orders.payment_reference_used(tx.db, reference, session=tx.session):
                raise DomainError("This payment reference already paid another order", code="PAYMENT_REFERENCE_USED")
            try:
                entry = await tx.post_hold(
                    order["holdId"],
                    Memo(
                        EntryKind.REDEMPTION,
                        f"Redeemed {order['quantity']} × {order['giftName']}",
                        Source("REDEMPTION", order_id),
                        {"giftId": order["giftId"], "paymentReference": reference},
                    ),
                )
            except DomainError as exc:
                if exc.code != HoldRefusal.HOLD_EXPIRED:
                    raise
                raise DomainError(
                    "The payment came after the order's payment window closed; refund it",
                    code="PAYMENT_EXPIRED",
                    paymentDueAt=order["paymentDueAt"].isoformat(),
                ) from None
            virtual = order.get("kind") == "VIRTUAL"  # a coupon is the member's once paid
            await self._transition(
                tx,
                order,
                OrderStatus.FULFILLED if virtual else OrderStatus.PLACED,
                {
                    **(Coupons.fulfilled(order, tx.now) if virtual else {}),
                    "cashPaid": amount,
                    "paymentReference": reference,
                    "paidAt": tx.now,
                    "paymentConfirmedBy": f"{principal.role.value}:{principal.subject}",
                    "spendEntryId": entry["_id"],
                },
            )
            if audit is not None:
                await audit(tx.session, order_id, {"paymentReference": reference, "amount": amount})
            return {"redemptionId": order_id}

        try:
            await self.ledger.transact(work)
        except DuplicateKeyError:  # a concurrent confirmation of another order took the reference
            raise DomainError(
                "This payment reference already paid another order", code="PAYMENT_REFERENCE_USED"
            ) from None
        return await self.get(order_id)

    async def cancel(
        self, principal: Principal, order_id: str, reason: str | None, *, audit: Recorder | None = None
    ) -> Document:
        """Cancel: points go back to their lots (original expiry) and the stock to the gift.

        A member may cancel their own order while it awaits payment or is placed; an
        admin may also cancel a fulfilled one (a returned parcel), which puts the unit
        back in stock. An unpaid order's held points are released, never spent.
        """
        allowed = {str(OrderStatus.AWAITING_PAYMENT), str(OrderStatus.PLACED)}
        staff = allows(principal, Permission.ORDERS_FULFIL)
        if staff:
            allowed.add(str(OrderStatus.FULFILLED))

        async def work(tx: LedgerTx) -> Document:
            order = await self._locked(tx, order_id)
            if not staff and order["memberId"] != principal.subject:
                raise redemption_not_found(order_id)  # someone else's order: as if it did not exist
            if order.get("kind") == "VIRTUAL":  # a coupon: inside its window, and only if unused
                await self.coupons.check_cancel(tx.db, tx.session, order, tx.now)
            elif order["status"] not in allowed:
                raise invalid_state(order, "cancelled")
            await self._cancel(tx, order, reason, f"{principal.role.value}:{principal.subject}")
            if audit is not None:
                await audit(tx.session, order_id, {"memberId": order["memberId"], "from": order["status"]})
            return {"redemptionId": order_id}

        await self.ledger.transact(work)
        return await self.get(order_id)

    async def cancel_unpaid(self, hold: Document) -> bool:
        """The sweeper's part: an order still awaiting payment past its deadline is cancelled."""

        async def work(tx: LedgerTx) -> Document:
            order = await self._locked(tx, hold["source"]["id"])
            if order["status"] != OrderStatus.AWAITING_PAYMENT or order.get("holdId") != hold["_id"]:
                return {"cancelled": False}
            await self._cancel(tx, order, PAYMENT_TIMEOUT_REASON, "system:payment-timeout")
            return {"cancelled": True}

        return bool((await self.ledger.transact(work))["cancelled"])

    async def cancel_unpaid_in(self, tx: LedgerTx, hold: Document, reason: str, by: str) -> bool:
        """Cancel the unpaid order behind ``hold`` inside the caller's transaction (a freeze), as the
        payment timeout would: points and stock return. False if the order is no longer unpaid."""
        order = await orders.find(tx.db, hold["source"]["id"], session=tx.session)
        if order is None or order["status"] != OrderStatus.AWAITING_PAYMENT or order.get("holdId") != hold["_id"]:
            return False
        await self._cancel(tx, order, reason, by)
        return True

    async def _locked(self, tx: LedgerTx, order_id: str) -> Document:
        """The order, read after locking its member (every change of an order goes through it)."""
        member_id = await orders.member_of(tx.db, order_id, session=tx.session)
        if member_id is None:
            raise redemption_not_found(order_id)
        await tx.member(member_id)
        order = await orders.find(tx.db, order_id, session=tx.session)
        assert order is not None
        return order

    async def _cancel(self, tx: LedgerTx, order: Document, reason: str | None, by: str) -> None:
        what = f"{order['quantity']} × {order['giftName']}"
        source = Source("REDEMPTION", order["_id"])
        entry: Document | None
        if order["status"] == OrderStatus.AWAITING_PAYMENT:
            entry = await tx.void_hold(
                order["holdId"],
                Memo(
                    EntryKind.REDEMPTION_VOID,
                    f"Unpaid redemption of {what} cancelled",
                    source,
                    {"giftId": order["giftId"]},
                ),
            )
        else:
            entry = await tx.restore(
                order["memberId"],
                await tx.entry(order["spendEntryId"]),
                Memo(
                    EntryKind.REDEMPTION_CANCEL, f"Cancelled redemption of {what}", source, {"giftId": order["giftId"]}
                ),
            )
        if order.get("kind") == "VIRTUAL":  # codes back to the pool, and the stock with them
            await self.coupons.release(tx.db, tx.session, order, tx.now)
        else:
            await gifts.return_stock(tx.db, order["giftId"], order["quantity"], tx.now, session=tx.session)
        await self._transition(
            tx,
            order,
            OrderStatus.CANCELLED,
            {
                "cancelledAt": tx.now,
                "cancelReason": reason,
                "cancelledBy": by,
                "cancelEntryId": entry["_id"] if entry else None,
            },
        )

    @staticmethod
    async def _transition(tx: LedgerTx, order: Document, status: OrderStatus, fields: Document) -> None:
        fields = {"updatedAt": tx.now, **fields}
        if not await orders.transition(tx.db, order["_id"], order["status"], status, fields, session=tx.session):
            raise invalid_state(order, status.lower())

    async def page_for_member(self, member_id: str, *, first: int, after: str | None) -> list[Document]:
        """``first + 1`` orders of one member, newest first."""
        if after is not None and not ORDER_ID.fullmatch(after):
            raise BadInput("after is not a valid cursor", field="after")
        return await orders.page_for_member(self.db, member_id, before=after, size=first + 1)
