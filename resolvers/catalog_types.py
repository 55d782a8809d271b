"""Gifts, their prices and eligibility, and redemption orders as clients see them."""

from __future__ import annotations

from datetime import datetime

import strawberry

from dataloaders.catalog import gift_loader
from gateway.core.auth import Role
from gateway.core.clock import as_utc
from gateway.core.errors import Forbidden
from gateway.core.permissions import Permission, allows, require_permission
from gateway.domain import catalog as rules
from gateway.domain.calendar import Period
from gateway.domain.coupons import GiftKind as DomainGiftKind
from gateway.features.catalog import gift_not_found, rules_of, version_of, visible_to
from gateway.features.redemptions import OrderStatus
from gateway.store.mongo import Document
from resolvers.context import Info
from resolvers.coupon_types import KINDS, GiftKind, IssuedCoupon
from resolvers.enums import graphql_enum

EligibilityReason = graphql_enum(rules.Reason, "EligibilityReason", "Why a member cannot redeem a gift now.")
GiftStatus = graphql_enum(rules.Status, "GiftStatus", "Where a gift stands now (from its flag, window and stock).")
LimitPeriod = graphql_enum(Period, "LimitPeriod", "Calendar window of a per-member limit, in the program timezone.")


# Domain value → GraphQL enum member, looked up rather than built per gift.
STATUSES = {status: GiftStatus(status.value) for status in rules.Status}
REASONS = {reason: EligibilityReason(reason.value) for reason in rules.Reason}
PERIODS = {period: LimitPeriod(period.value) for period in Period}

RedemptionStatus = graphql_enum(
    OrderStatus,
    "RedemptionStatus",
    "awaiting payment (points + cash) → placed → fulfilled (shipped), or cancelled (points and stock returned).",
)


@strawberry.type(description="A price: points, plus a cash part in fen (0 for a pure-points gift).")
class GiftPrice:
    points: int
    cash: int = strawberry.field(description="Cash part in fen (¥1 = 100).")
    on_offer: bool = strawberry.field(description="True when a limited-time offer sets the points.")


@strawberry.type(description="限时兑换: a special points price for starts_at <= now < ends_at.")
class GiftOffer:
    points: int
    starts_at: datetime
    ends_at: datetime
    active: bool


@strawberry.type(description="限兑: null fields mean no such limit.")
class GiftLimits:
    per_member: int | None = strawberry.field(description="Units per member per period window.")
    period: LimitPeriod | None  # type: ignore[valid-type]
    per_order: int | None


@strawberry.type
class Eligibility:
    can_redeem: bool
    reason: EligibilityReason | None  # type: ignore[valid-type]


@strawberry.federation.type(keys=["id"], description="A gift in the points mall (积分商城).")
class Gift:
    id: strawberry.ID
    name: str
    description: str
    image_url: str | None
    category: str
    kind: GiftKind  # type: ignore[valid-type]
    stock: int
    listed: bool = strawberry.field(description="The operator's listing flag; see status for what is on sale now.")
    starts_at: datetime | None = strawberry.field(description="Scheduled listing start (定时上架); null: at once.")
    ends_at: datetime | None = strawberry.field(description="Listing end; null: open-ended.")
    min_tier: str = strawberry.field(description="Lowest tier code that may redeem it (兑换权限).")
    limits: GiftLimits
    list_price: GiftPrice = strawberry.field(description="The regular price, ignoring offers.")
    created_at: datetime
    version: int = strawberry.field(
        description="Raised by every admin edit (not by stock moves); send it as updateGift's expectedVersion."
    )
    # Computed when the gift is built, at the request's one instant: plain data fields
    # resolve without a resolver call each, which a page of gifts does many times.
    price: GiftPrice = strawberry.field(
        description="What a redemption costs at this instant (the offer price inside its window)."
    )
    status: GiftStatus  # type: ignore[valid-type]
    offer: GiftOffer | None
    doc: strawberry.Private[Document]
    gift_rules: strawberry.Private[rules.GiftRules]

    @classmethod
    def of(
        cls,
        doc: Document,
        now: datetime,
        verdict: rules.Eligibility | None = None,
        gift_rules: rules.GiftRules | None = None,
    ) -> Gift:
        """The gift at ``now``; ``verdict``: the member's eligibility (gifts and gift with memberId);
        ``gift_rules``: ``rules_of(doc)`` when the caller has it already."""
        gift_rules = gift_rules or rules_of(doc)
        limits = gift_rules.limits
        price = rules.price_at(gift_rules, now)
        offer = gift_rules.offer
        return cls(
            id=strawberry.ID(doc["_id"]),
            name=doc["name"],
            description=doc.get("description", ""),
            image_url=doc.get("imageUrl"),
            category=doc["category"],
            kind=KINDS[DomainGiftKind(doc.get("kind", "PHYSICAL"))],
            stock=doc["stock"],
            listed=doc["listed"],
            starts_at=as_utc(doc["listFrom"]) if doc.get("listFrom") else None,
            ends_at=as_utc(doc["listUntil"]) if doc.get("listUntil") else None,
            min_tier=doc["minTier"],
            limits=GiftLimits(
                per_member=limits.per_member,
                period=PERIODS[limits.period] if limits.period else None,
                per_order=limits.per_order,
            ),
            list_price=GiftPrice(points=doc["points"], cash=doc["cash"], on_offer=False),
            created_at=as_utc(doc["createdAt"]),
            version=version_of(doc),
            price=GiftPrice(points=price.points, cash=price.cash, on_offer=price.on_offer),
            status=STATUSES[rules.status(gift_rules, now)],
            offer=None
            if offer is None
            else GiftOffer(
                points=offer.points,
                starts_at=as_utc(offer.starts_at),
                ends_at=as_utc(offer.ends_at),
                active=offer.active(now),
            ),
            eligibility=None
            if verdict is None
            else Eligibility(can_redeem=verdict.can_redeem, reason=REASONS[verdict.reason] if verdict.reason else None),
            doc=doc,
            gift_rules=gift_rules,
        )

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> Gift:
        """Federation ``_entities``: batched like Member's, and visible only as ``gift(id)`` is."""
        doc = await info.context.loader("catalog.gift", gift_loader).load(str(id))
        if doc is None or not visible_to(doc, info.context.principal):
            raise gift_not_found(str(id))
        return cls.of(doc, info.context.now)

    @strawberry.field(description="Admins only: what the operator pays for one unit, in fen.")
    def cost_price(self, info: Info) -> int:
        require_permission(info.context.principal, Permission.CATALOG_MANAGE)
        return self.doc["costPrice"]

    @strawberry.field(
        description="Admins only (seed 004): (cost price − cash part) / points price in force, in yuan per "
        'point, as a decimal string rounded half-up to 3 places, e.g. "2.133".'
    )
    def cost_per_point(self, info: Info) -> str:
        require_permission(info.context.principal, Permission.CATALOG_MANAGE)
        price = rules.price_at(self.gift_rules, info.context.now)
        return str(rules.cost_per_point(self.doc["costPrice"], price.cash, price.points))

    eligibility: Eligibility | None = strawberry.field(
        description="For the member the list was asked for (memberId): can they redeem one now?"
    )


@strawberry.type(description="A redemption order.")
class Redemption:
    id: strawberry.ID
    member_id: str
    gift_id: str
    gift_name: str
    quantity: int
    unit_points: int = strawberry.field(description="Points per unit at the instant of the order.")
    points: int = strawberry.field(description="Points charged for the whole order.")
    cash_due: int = strawberry.field(description="Cash part of the price, in fen (0 for pure points).")
    cash_paid: int = strawberry.field(description="Cash part paid, in fen: 0 until the payment is confirmed.")
    payment_reference: str | None = strawberry.field(description="The confirmed payment's reference.")
    payment_due_at: datetime | None = strawberry.field(
        description="Awaiting payment: the order is cancelled if not paid by then."
    )
    paid_at: datetime | None
    on_offer: bool
    status: RedemptionStatus  # type: ignore[valid-type]
    created_at: datetime
    updated_at: datetime
    fulfilled_at: datetime | None
    carrier: str | None
    tracking_number: str | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    kind: GiftKind = strawberry.field(description="VIRTUAL: a coupon, fulfilled at once with its codes.")  # type: ignore[valid-type]
    cancel_until: datetime | None = strawberry.field(
        description="A coupon order: until when it may be cancelled (if no code of it was used)."
    )
    doc: strawberry.Private[Document]

    @classmethod
    def of(cls, doc: Document) -> Redemption:
        shipment = doc.get("shipment") or {}
        return cls(
            id=strawberry.ID(doc["_id"]),
            member_id=doc["memberId"],
            gift_id=doc["giftId"],
            gift_name=doc["giftName"],
            quantity=doc["quantity"],
            unit_points=doc["unitPoints"],
            points=doc["points"],
            cash_due=doc["cashDue"] if "cashDue" in doc else doc["cashPaid"],
            cash_paid=doc["cashPaid"],
            payment_reference=doc.get("paymentReference"),
            payment_due_at=as_utc(doc["paymentDueAt"]) if doc.get("paymentDueAt") else None,
            paid_at=as_utc(doc["paidAt"]) if doc.get("paidAt") else None,
            on_offer=doc["onOffer"],
            status=RedemptionStatus(doc["status"]),
            created_at=as_utc(doc["createdAt"]),
            updated_at=as_utc(doc["updatedAt"]),
            fulfilled_at=as_utc(doc["fulfilledAt"]) if doc.get("fulfilledAt") else None,
            carrier=shipment.get("carrier"),
            tracking_number=shipment.get("trackingNumber"),
            cancelled_at=as_utc(doc["cancelledAt"]) if doc.get("cancelledAt") else None,
            cancel_reason=doc.get("cancelReason"),
            kind=KINDS[DomainGiftKind(doc.get("kind", "PHYSICAL"))],
            cancel_until=as_utc(doc["cancelUntil"]) if doc.get("cancelUntil") else None,
            doc=doc,
        )

    @strawberry.field(
        description="A coupon order's codes, for its member and admins only (FORBIDDEN for anyone else); empty "
        "until the order is fulfilled (a points + cash order: paid) and after it is cancelled."
    )
    async def coupons(self, info: Info) -> list[IssuedCoupon]:
        who = info.context.principal
        own = who is not None and who.role is Role.MEMBER and who.subject == self.member_id
        if not own and not allows(who, Permission.COUPONS_REVEAL):
            raise Forbidden("Only the member and admins (coupons:reveal) see a coupon's code")
        return [IssuedCoupon.of(c) for c in await info.context.services.coupons.issued(self.doc)]

    @strawberry.field(description="The gift as it is now (null if it no longer exists).")
    async def gift(self, info: Info) -> Gift | None:
        doc = await info.context.loader("catalog.gift", gift_loader).load(self.gift_id)
        return None if doc is None else Gift.of(doc, info.context.now)
