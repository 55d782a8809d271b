"""Redemption orders: points (and stock) for a gift, all in one ledger transaction.

``redeem`` takes stock with a conditional ``$inc`` first (never below zero: concurrent
buyers meet as a write conflict at once and the loser retries against the new stock),
checks eligibility at the instant of the transaction (a refusal aborts it, stock
included), spends the points soonest-expiring lots first and inserts the order. Either all of it commits or
none of it does: no sale without a charge, no charge without an order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bson import ObjectId

from gateway.core.auth import Principal, Role
from gateway.core.errors import BadInput, DomainError, Forbidden, NotFound
from gateway.domain.catalog import Reason, price_at
from gateway.features.catalog import eligibilities, gift_not_found, rules_of
from gateway.ledger.transaction import EntryKind, Idempotency, InsufficientPoints, Ledger, LedgerTx, Source
from gateway.store.mongo import Database, Document

MAX_QUANTITY = 1000
REASON_MESSAGES = {
    Reason.NOT_LISTED: "This gift is not on sale now",
    Reason.OUT_OF_STOCK: "This gift is out of stock",
    Reason.TIER_TOO_LOW: "The member's tier may not redeem this gift",
    Reason.LIMIT_REACHED: "The redemption limit for this gift is reached",
    Reason.INSUFFICIENT_POINTS: "The member does not have enough available points",
}


class OrderStatus(StrEnum):
    PLACED = "PLACED"
    FULFILLED = "FULFILLED"
    CANCELLED = "CANCELLED"


def redemption_not_found(order_id: str) -> NotFound:
    return NotFound(f"Redemption {order_id!r} not found", code="REDEMPTION_NOT_FOUND")


def invalid_state(order: Document, action: str) -> DomainError:
    return DomainError(
        f"A {order['status'].lower()} redemption cannot be {action}", code="INVALID_STATE", status=order["status"]
    )


def refused(reason: Reason) -> DomainError:
    if reason is Reason.INSUFFICIENT_POINTS:
        return InsufficientPoints(REASON_MESSAGES[reason])
    return DomainError(REASON_MESSAGES[reason], code=str(reason))


def new_order_id() -> str:
    """Ids sort in creation order (ObjectId hex), which is the order a member's list pages in."""
    return "red_" + str(ObjectId())


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
    def __init__(self, db: Database, ledger: Ledger) -> None:
        self.db = db
        self.ledger = ledger

    async def get(self, order_id: str) -> Document:
        doc = await self.db["redemptions"].find_one({"_id": order_id})
        if doc is None:
            raise redemption_not_found(order_id)
        return doc

    async def redeem(self, principal: Principal, request: RedeemRequest) -> Document:
        """Place an order; a replay of the same idempotency key returns the original order."""
        req = request.validated()

        async def work(tx: LedgerTx) -> Document:
            # Take the stock first: the gift is the contended document, so a loser of the race
            # meets its write conflict now, before doing the rest of the work, and retries.
            gift = await tx.db["gifts"].find_one_and_update(
                {"_id": req.gift_id, "stock": {"$gte": req.quantity}},
                {"$inc": {"stock": -req.quantity, "redeemed": req.quantity}, "$set": {"updatedAt": tx.now}},
                session=tx.session,
            )
            taken = gift is not None
            if gift is None:
                gift = await tx.db["gifts"].find_one({"_id": req.gift_id}, session=tx.session)
                if gift is None:
                    raise gift_not_found(req.gift_id)
            member = await tx.member(req.member_id)
            rules = rules_of(gift)
            verdicts = await eligibilities(
                tx.db, member, [gift], tx.program, tx.now, quantity=req.quantity, session=tx.session
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
            entry = await tx.spend(
                req.member_id,
                points,
                kind=EntryKind.REDEMPTION,
                reason=f"Redeemed {req.quantity} × {gift['name']}",
                source=Source("REDEMPTION", order_id),
                extra={"giftId": req.gift_id},
            )
            await tx.db["redemptions"].insert_one(
                {
                    "_id": order_id,
                    "memberId": req.member_id,
                    "giftId": req.gift_id,
                    "giftName": gift["name"],
                    "quantity": req.quantity,
                    "unitPoints": price.points,
                    "points": points,
                    "cashPaid": req.cash_paid,
                    "onOffer": price.on_offer,
                    "status": str(OrderStatus.PLACED),
                    "spendEntryId": entry["_id"],
                    "placedBy": f"{principal.role.value}:{principal.subject}",
                    "createdAt": tx.now,
                    "updatedAt": tx.now,
                },
                session=tx.session,
            )
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
        result = await self.ledger.transact(work, idempotency=idempotency)
        return await self.get(result["redemptionId"])

    async def fulfil(self, order_id: str, *, carrier: str | None, tracking_number: str | None) -> Document:
        """Placed → fulfilled (shipped); anything else is INVALID_STATE."""
        await self.get(order_id)
        now = self.ledger.clock.now()
        result = await self.db["redemptions"].update_one(
            {"_id": order_id, "status": str(OrderStatus.PLACED)},
            {
                "$set": {
                    "status": str(OrderStatus.FULFILLED),
                    "fulfilledAt": now,
                    "updatedAt": now,
                    "shipment": {"carrier": carrier, "trackingNumber": tracking_number},
                }
            },
        )
        if result.modified_count != 1:
            raise invalid_state(await self.get(order_id), "fulfilled")
        return await self.get(order_id)

    async def cancel(self, principal: Principal, order_id: str, reason: str | None) -> Document:
        """Cancel: points go back to their lots (original expiry) and the stock to the gift.

        A member may cancel their own order while it is placed; an admin may also
        cancel a fulfilled one (a returned parcel), which puts the unit back in stock.
        """
        allowed = {str(OrderStatus.PLACED)}
        if principal.role is Role.ADMIN:
            allowed.add(str(OrderStatus.FULFILLED))

        async def work(tx: LedgerTx) -> Document:
            order = await tx.db["redemptions"].find_one({"_id": order_id}, session=tx.session)
            if order is None:
                raise redemption_not_found(order_id)
            if principal.role is not Role.ADMIN and order["memberId"] != principal.subject:
                raise Forbidden("Not allowed to cancel this redemption")
            if order["status"] not in allowed:
                raise invalid_state(order, "cancelled")
            await tx.member(order["memberId"])
            spend_entry = await tx.entry(order["spendEntryId"])
            entry = await tx.restore(
                order["memberId"],
                spend_entry,
                kind=EntryKind.REDEMPTION_CANCEL,
                reason=f"Cancelled redemption of {order['quantity']} × {order['giftName']}",
                source=Source("REDEMPTION", order_id),
                extra={"giftId": order["giftId"]},
            )
            await tx.db["gifts"].update_one(
                {"_id": order["giftId"]},
                {"$inc": {"stock": order["quantity"]}, "$set": {"updatedAt": tx.now}},
                session=tx.session,
            )
            changed = await tx.db["redemptions"].update_one(
                {"_id": order_id, "status": order["status"]},
                {
                    "$set": {
                        "status": str(OrderStatus.CANCELLED),
                        "cancelledAt": tx.now,
                        "updatedAt": tx.now,
                        "cancelReason": reason,
                        "cancelledBy": f"{principal.role.value}:{principal.subject}",
                        "cancelEntryId": entry["_id"],
                    }
                },
                session=tx.session,
            )
            if changed.modified_count != 1:
                raise invalid_state(order, "cancelled")
            return {"redemptionId": order_id}

        await self.ledger.transact(work)
        return await self.get(order_id)

    async def page_for_member(self, member_id: str, *, first: int, after: str | None) -> list[Document]:
        """``first + 1`` orders of one member, newest first."""
        query: Document = {"memberId": member_id}
        if after is not None:
            query["_id"] = {"$lt": after}
        return [d async for d in self.db["redemptions"].find(query).sort("_id", -1).limit(first + 1)]
