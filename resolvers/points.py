"""Points mutations: purchases, refunds, check-in, behaviours, grants, deduction, benefits.

Who may call what (docs/points.md):
- recordPurchase, refundPurchase, recordBehaviour, grantPoints: admin (the shop's backend);
  a member recording their own purchase or review would mint points for themselves.
- checkIn, deductPointsAtCheckout, cancelCheckoutDeduction, consumeBenefit: the member themselves,
  or an admin.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import strawberry

from gateway.core.clock import as_utc
from gateway.core.permissions import Permission, require_permission, require_self_or
from gateway.domain.earning import LineItem
from gateway.domain.holds import HoldStatus
from gateway.features.purchases import PurchaseRequest, RefundRequest
from gateway.store.mongo import Document
from resolvers.context import Info
from resolvers.enums import graphql_enum
from resolvers.grants import GrantRequest
from resolvers.ledger_types import LedgerEntry
from resolvers.member_types import Member


async def _entries(info: Info, result: Document) -> list[LedgerEntry]:
    return [LedgerEntry.of(doc) for doc in await info.context.services.ledger.entries(result.get("entryIds", []))]


async def _member(info: Info, member_id: str) -> Member:
    """Read after the write: drop the request's cached document first, so this field and any
    later field of the same operation see the new balances."""
    info.context.forget_member(member_id)
    return Member.of(await info.context.load_member(member_id))


R = TypeVar("R")
HoldStatusEnum = graphql_enum(HoldStatus, "HoldStatus", "A two-phase points hold: HELD, then POSTED or VOIDED.")


@strawberry.input(description="One line of an order: what was bought and what was paid for it.")
class LineItemInput:
    sku: str | None = strawberry.field(default=None, description="Unique within the order; names the line in a refund.")
    category: str | None = None
    amount: int = strawberry.field(description="Paid for this line in fen, after discounts.")


@strawberry.input(description="A returned line of an order and the fen refunded for it.")
class RefundLineInput:
    sku: str
    amount: int


@strawberry.type(description="A campaign's bonus on a purchase.")
class CampaignBonus:
    campaign_id: strawberry.ID
    name: str
    points: int


@strawberry.input
class RecordPurchaseInput:
    member_id: strawberry.ID
    order_id: str
    amount: int = strawberry.field(description="Paid amount in fen (¥1 = 100).")
    idempotency_key: str
    paid_at: datetime | None = strawberry.field(default=None, description="Defaults to now.")
    display_name: str | None = strawberry.field(
        default=None, description="Used only when the purchase makes the buyer a member (implicit join)."
    )
    line_items: list[LineItemInput] | None = strawberry.field(
        default=None,
        description="The order's lines (up to 200); their amounts add up to amount exactly. Campaigns boost lines by "
        "category or SKU; a refund may name the lines it returns.",
    )


@strawberry.type
class PurchaseResult:
    order_id: str
    joined: bool = strawberry.field(description="This purchase made the buyer a member.")
    points: int = strawberry.field(description="Points earned (pending until availableAt), campaign bonuses included.")
    bonus_points: int = strawberry.field(default=0, description="The part of points that campaigns gave.")
    campaigns: list[CampaignBonus]
    capped: bool = strawberry.field(description="An earn cap reduced the points.")
    available_at: datetime
    tier_before: str
    tier_after: str
    points_deducted: int = strawberry.field(
        default=0, description="Points held at checkout for this order that the purchase spent (0 if none)."
    )
    replayed: bool
    member: Member
    entries: list[LedgerEntry]


@strawberry.input
class RefundPurchaseInput:
    member_id: strawberry.ID
    order_id: str
    amount: int = strawberry.field(description="Refunded amount in fen; at most what is still unrefunded.")
    idempotency_key: str
    lines: list[RefundLineInput] | None = strawberry.field(
        default=None,
        description="The returned lines (by SKU), adding up to amount. Without them the amount is spread over the "
        "order's lines in proportion to what each can still refund.",
    )


@strawberry.type
class RefundResult:
    order_id: str
    points: int = strawberry.field(description="Points the refund took back (requested), campaign bonuses included.")
    bonus_points: int = strawberry.field(default=0, description="The part of points that was campaign bonus.")
    shortfall: int = strawberry.field(description="Points already spent that could not be taken back.")
    points_returned: int = strawberry.field(
        default=0,
        description="Points deducted at checkout on this order that the refund gave back (same share as the money).",
    )
    referral_revoked: bool = strawberry.field(
        default=False,
        description="This refund left less than a qualifying first purchase, so the referrer's reward was taken back.",
    )
    tier_before: str
    tier_after: str
    replayed: bool
    member: Member
    entries: list[LedgerEntry]


@strawberry.type
class CheckInResult:
    streak: int
    points: int
    bonus: int = strawberry.field(description="Streak bonus included in points.")
    capped: bool
    replayed: bool
    member: Member
    entries: list[LedgerEntry]


@strawberry.type
class BehaviourResult:
    event: str
    points: int
    capped: bool
    replayed: bool
    member: Member
    entries: list[LedgerEntry]


@strawberry.input
class GrantPointsInput:
    member_ids: list[strawberry.ID] | None = None
    member_id: strawberry.ID | None = None
    points: int = strawberry.field(description="Positive grants, negative adjusts (never below zero).")
    reason: str
    idempotency_key: str


@strawberry.enum(description="POSTED at once, or PENDING_APPROVAL: above the two-person threshold, see `request`.")
class GrantStatus(Enum):
    POSTED = "POSTED"
    PENDING_APPROVAL = "PENDING_APPROVAL"


@strawberry.type
class GrantResult:
    points: int
    replayed: bool
    members: list[Member]
    entries: list[LedgerEntry] = strawberry.field(description="Empty while the grant waits for approval.")
    status: GrantStatus = GrantStatus.POSTED
    request: GrantRequest | None = strawberry.field(
        default=None, description="The grant request a second admin must approve (PENDING_APPROVAL only)."
    )


@strawberry.input
class DeductPointsInput:
    member_id: strawberry.ID
    order_id: str
    order_amount: int = strawberry.field(description="Order amount in fen before the deduction.")
    points: int
    idempotency_key: str


@strawberry.type
class DeductionResult:
    order_id: str
    points: int
    value_fen: int = strawberry.field(description="What the points take off the order, in fen.")
    status: HoldStatusEnum = strawberry.field(  # type: ignore[valid-type]
        description="HELD until recordPurchase of the order spends them (POSTED) or the checkout is cancelled or "
        "times out (VOIDED)."
    )
    hold_expires_at: datetime | None = strawberry.field(
        default=None, description="When held points are released if unposted."
    )
    replayed: bool
    member: Member
    entries: list[LedgerEntry]


@strawberry.type
class ConsumeBenefitResult:
    code: str
    used: int
    replayed: bool
    member: Member


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


async def _points_result(info: Info, cls: type[R], result: Document, **values: Any) -> R:
    """The one mapper of every points mutation's result to its GraphQL type.

    Each field of ``cls`` takes the result's key of the same name in camelCase (``order_id`` from
    ``orderId``; an instant as UTC) unless ``values`` gives it; a key the result lacks leaves the
    field's default. ``member``/``members`` and ``entries`` are read after the write.
    """
    for field in cls.__strawberry_definition__.fields:  # type: ignore[attr-defined]
        name = field.python_name
        if name in values:
            continue
        if name == "member":
            values[name] = await _member(info, result["memberId"])
        elif name == "members":
            values[name] = [await _member(info, m) for m in result["memberIds"]]
        elif name == "entries":
            values[name] = await _entries(info, result)
        elif (key := _camel(name)) in result:
            found = result[key]
            values[name] = as_utc(found) if isinstance(found, datetime) else found
    return cls(**values)


async def _deduction(info: Info, result: Document) -> DeductionResult:
    status = HoldStatusEnum(result.get("status", HoldStatus.POSTED))  # deducted before holds: spent at once
    return await _points_result(info, DeductionResult, result, status=status)


@strawberry.type
class PointsMutation:
    @strawberry.mutation(description="Record a paid order (admin). Joins the buyer implicitly if the program says so.")
    async def record_purchase(self, info: Info, input: RecordPurchaseInput) -> PurchaseResult:
        who = require_permission(info.context.principal, Permission.SHOP_BACKEND)
        request = PurchaseRequest(
            member_id=str(input.member_id),
            order_id=input.order_id,
            amount=input.amount,
            paid_at=input.paid_at,
            display_name=input.display_name,
            lines=tuple(LineItem(x.sku, x.category, x.amount) for x in input.line_items or ()),
        )
        result = await info.context.services.purchases.record(who, request, input.idempotency_key)
        campaigns = [
            CampaignBonus(campaign_id=strawberry.ID(c["campaignId"]), name=c["name"], points=c["points"])
            for c in result.get("campaigns", [])
        ]
        return await _points_result(info, PurchaseResult, result, campaigns=campaigns)

    @strawberry.mutation(description="Refund all or part of an order (admin): takes back its share of points.")
    async def refund_purchase(self, info: Info, input: RefundPurchaseInput) -> RefundResult:
        who = require_permission(info.context.principal, Permission.SHOP_BACKEND)
        request = RefundRequest(
            member_id=str(input.member_id),
            order_id=input.order_id,
            amount=input.amount,
            lines=tuple((x.sku, x.amount) for x in input.lines or ()),
        )
        result = await info.context.services.purchases.refund(who, request, input.idempotency_key)
        return await _points_result(info, RefundResult, result)

    @strawberry.mutation(description="Daily check-in (签到): the member or an admin; once per local day.")
    async def check_in(self, info: Info, member_id: strawberry.ID, idempotency_key: str | None = None) -> CheckInResult:
        who = require_self_or(info.context.principal, str(member_id), Permission.SHOP_BACKEND)
        result = await info.context.services.check_ins.check_in(who, str(member_id), idempotency_key)
        return await _points_result(info, CheckInResult, result)

    @strawberry.mutation(description="A behaviour event (REVIEW, PHOTO_REVIEW...) from the shop backend (admin).")
    async def record_behaviour(
        self, info: Info, member_id: strawberry.ID, event: str, idempotency_key: str
    ) -> BehaviourResult:
        who = require_permission(info.context.principal, Permission.SHOP_BACKEND)
        result = await info.context.services.behaviours.record(who, str(member_id), event, idempotency_key)
        return await _points_result(info, BehaviourResult, result)

    @strawberry.mutation(
        description="Operator grant (送积分) or negative adjustment, with a reason (points:adjust). Support moves at "
        "most its limits per grant and per day (GRANT_LIMIT_EXCEEDED). A grant moving more than the two-person "
        "threshold does not post: it is PENDING_APPROVAL until a second admin approves its `request`."
    )
    async def grant_points(self, info: Info, input: GrantPointsInput) -> GrantResult:
        who = require_permission(info.context.principal, Permission.POINTS_ADJUST)
        ids = [str(i) for i in (input.member_ids or [])] + ([str(input.member_id)] if input.member_id else [])
        grants = info.context.services.grants
        result = await grants.grant(who, ids, input.points, input.reason, input.idempotency_key)
        request_id = result.get("requestId")
        request = GrantRequest.of(await grants.get(request_id)) if request_id else None
        return await _points_result(info, GrantResult, result, status=GrantStatus(result["status"]), request=request)

    @strawberry.mutation(
        description="Use points at checkout (积分抵扣): N points = ¥1, capped per order. The points are HELD until "
        "recordPurchase of the same order spends them, re-checking the cap against the amount really paid."
    )
    async def deduct_points_at_checkout(self, info: Info, input: DeductPointsInput) -> DeductionResult:
        who = require_self_or(info.context.principal, str(input.member_id), Permission.SHOP_BACKEND)
        result = await info.context.services.deductions.deduct(
            who, str(input.member_id), input.order_id, input.order_amount, input.points, input.idempotency_key
        )
        return await _deduction(info, result)

    @strawberry.mutation(
        description="Cancel a checkout: points held by deductPointsAtCheckout for the order go back (VOIDED). "
        "Repeating it is harmless; once the purchase spent them, HOLD_ALREADY_POSTED."
    )
    async def cancel_checkout_deduction(self, info: Info, member_id: strawberry.ID, order_id: str) -> DeductionResult:
        who = require_self_or(info.context.principal, str(member_id), Permission.SHOP_BACKEND)
        result = await info.context.services.deductions.cancel(who, str(member_id), order_id)
        return await _deduction(info, result)

    @strawberry.mutation(description="Consume one use of a quota benefit (free shipping, new-product discount).")
    async def consume_benefit(
        self, info: Info, member_id: strawberry.ID, code: str, idempotency_key: str
    ) -> ConsumeBenefitResult:
        who = require_self_or(info.context.principal, str(member_id), Permission.SHOP_BACKEND)
        result = await info.context.services.benefits.consume(who, str(member_id), code, idempotency_key)
        return await _points_result(info, ConsumeBenefitResult, result)
