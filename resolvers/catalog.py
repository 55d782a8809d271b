"""The points mall over GraphQL: storefront queries, admin gift management, redemptions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry

from gateway.core.auth import Principal, Role, require_principal
from gateway.core.errors import BadInput, Forbidden
from gateway.core.permissions import Permission, require_permission, require_self_or
from gateway.domain.admin_audit import AuditAction
from gateway.domain.calendar import Period
from gateway.domain.catalog import Limits
from gateway.features.admin_audit import Recorder
from gateway.features.catalog import GiftSpec, eligibilities, gift_cursor, gift_not_found, rules_of, visible_to
from gateway.features.redemptions import RedeemRequest, redemption_not_found
from resolvers.catalog_types import Gift, LimitPeriod, Redemption
from resolvers.context import Info, together
from resolvers.coupon_types import GiftKind
from resolvers.enums import to_domain
from resolvers.pagination import Connection, connection, decode_cursor, page_size


@strawberry.input(description="限兑: leave a field null for no such limit.")
class GiftLimitsInput:
    per_member: int | None = None
    period: LimitPeriod | None = None  # type: ignore[valid-type]
    per_order: int | None = None

    def limits(self) -> Limits:
        return Limits(
            per_member=self.per_member,
            period=to_domain(Period, self.period) if self.period else None,
            per_order=self.per_order,
        )


@strawberry.input
class CreateGiftInput:
    name: str
    category: str
    cost_price: int = strawberry.field(description="What one unit costs the operator, in fen.")
    points: int
    cash: int = strawberry.field(default=0, description="Cash part in fen; 0 for a pure-points gift.")
    stock: int = 0
    description: str = ""
    image_url: str | None = None
    min_tier: str | None = strawberry.field(
        default=None, description="Tier code; default: the program's lowest tier that can redeem gifts."
    )
    limits: GiftLimitsInput | None = None
    listed: bool = True
    starts_at: datetime | None = strawberry.field(default=None, description="Scheduled listing start.")
    ends_at: datetime | None = None
    id: str | None = strawberry.field(default=None, description="Optional id (e.g. the shop's SKU).")
    kind: GiftKind = strawberry.field(  # type: ignore[valid-type]
        default=GiftKind.PHYSICAL,  # type: ignore[attr-defined]
        description="VIRTUAL: a coupon backed by a code pool (stock must be 0; import or generate codes).",
    )
    cancel_window_minutes: int | None = strawberry.field(
        default=None,
        description="VIRTUAL only: how long after fulfilment a member may cancel an unused coupon (default 1,440).",
    )


@strawberry.input(description="Only the fields given change; stock moves with restockGift.")
class UpdateGiftInput:
    name: str | None = strawberry.UNSET
    category: str | None = strawberry.UNSET
    cost_price: int | None = strawberry.UNSET
    points: int | None = strawberry.UNSET
    cash: int | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    image_url: str | None = strawberry.UNSET
    min_tier: str | None = strawberry.UNSET
    limits: GiftLimitsInput | None = strawberry.UNSET

    def changes(self) -> dict[str, Any]:
        nullable = {"image_url", "min_tier", "limits"}
        changes: dict[str, Any] = {}
        for name in ("name", "category", "cost_price", "points", "cash", "description", "image_url", "min_tier"):
            value = getattr(self, name)
            if value is strawberry.UNSET:
                continue
            if value is None and name not in nullable:
                raise BadInput(f"{name} cannot be null", field=name)
            changes[name] = value
        if self.limits is not strawberry.UNSET:
            changes["limits"] = self.limits.limits() if self.limits else Limits()
        return changes


@strawberry.input
class GiftOfferInput:
    points: int
    starts_at: datetime
    ends_at: datetime


@strawberry.input
class RedeemGiftInput:
    member_id: str
    gift_id: str
    idempotency_key: str = strawberry.field(description="Repeat it to retry safely; the first order is returned.")
    quantity: int = 1
    cash_paid: int = strawberry.field(
        default=0,
        description="The cash part the member agrees to pay, in fen; must match the price. Nothing is charged here: "
        "a points + cash order waits in AWAITING_PAYMENT until confirmRedemptionPayment.",
    )


def _audit(info: Info, who: Principal, action: AuditAction) -> Recorder:
    return info.context.services.admin_audit.recorder(who, action, "gift")


def _order_audit(info: Info, who: Principal, action: AuditAction, reason: str | None = None) -> Recorder:
    return info.context.services.admin_audit.recorder(who, action, "order", reason=reason)


@strawberry.type
class CatalogQuery:
    @strawberry.field(
        description="The mall, in creation order. Public without memberId; with memberId (that member or an "
        "admin) each gift carries eligibility. offeredOnly=false also shows sold-out and scheduled gifts; "
        "includeUnlisted (admins) shows everything."
    )
    async def gifts(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        category: str | None = None,
        member_id: str | None = None,
        offered_only: bool = True,
        include_unlisted: bool = False,
    ) -> Connection[Gift]:
        if member_id is not None:
            require_self_or(info.context.principal, member_id, Permission.MEMBERS_READ)
        if include_unlisted:
            require_permission(info.context.principal, Permission.CATALOG_MANAGE)
        size = page_size(first)
        position = decode_cursor(after)
        context = info.context
        now = context.now
        page = context.services.catalog.page(
            first=size,
            after=position,
            category=category,
            offered_only=offered_only,
            include_unlisted=include_unlisted,
            now=now,
        )
        if member_id is None:
            return connection([Gift.of(d, now) for d in await page], size, lambda gift: gift_cursor(gift.doc))
        # The page, the member and the program in one concurrent step, then the page's
        # eligibility in one pass (one query for the member's orders of limited gifts).
        docs, member, program = await together(page, context.load_member(member_id), context.program())
        rules = {d["_id"]: rules_of(d) for d in docs}  # once per gift: the verdicts and the views read them
        verdicts = await eligibilities(context.services.db, member, docs[:size], program, now, rules=rules)
        gifts = [Gift.of(d, now, verdicts.get(d["_id"]), rules[d["_id"]]) for d in docs]
        return connection(gifts, size, lambda gift: gift_cursor(gift.doc))

    @strawberry.field(description="One gift; unlisted gifts only for admins (else GIFT_NOT_FOUND).")
    async def gift(self, info: Info, id: strawberry.ID, member_id: str | None = None) -> Gift:
        context = info.context
        if member_id is None:
            doc = await context.services.catalog.get(str(id))
        else:
            require_self_or(context.principal, member_id, Permission.MEMBERS_READ)
            doc, member, program = await together(
                context.services.catalog.get(str(id)), context.load_member(member_id), context.program()
            )
        if not visible_to(doc, context.principal):
            raise gift_not_found(str(id))
        if member_id is None:
            return Gift.of(doc, context.now)
        verdicts = await eligibilities(context.services.db, member, [doc], program, context.now)
        return Gift.of(doc, context.now, verdicts[doc["_id"]])

    @strawberry.field(description="A redemption order: its member, an admin, or the payments service.")
    async def redemption(self, info: Info, id: strawberry.ID) -> Redemption:
        who = require_principal(info.context.principal)
        doc = await info.context.services.redemptions.get(str(id))
        if who.role is not Role.PAYMENTS:
            try:
                require_self_or(who, doc["memberId"], Permission.MEMBERS_READ, Permission.ORDERS_FULFIL)
            except Forbidden:
                if who.role is Role.MEMBER:
                    # Another member's order answers exactly like a missing one: ids cannot be probed.
                    raise redemption_not_found(str(id)) from None
                raise
        return Redemption.of(doc)


@strawberry.type
class CatalogMutation:
    @strawberry.mutation(description="Admins: add a gift to the mall.")
    async def create_gift(self, info: Info, input: CreateGiftInput) -> Gift:
        who = require_permission(info.context.principal, Permission.CATALOG_MANAGE)
        spec = GiftSpec(
            name=input.name,
            category=input.category,
            cost_price=input.cost_price,
            points=input.points,
            cash=input.cash,
            description=input.description,
            image_url=input.image_url,
            min_tier=input.min_tier,
            limits=input.limits.limits() if input.limits else Limits(),
            listed=input.listed,
            list_from=input.starts_at,
            list_until=input.ends_at,
        )
        if input.id is not None and not 1 <= len(input.id) <= 64:
            raise BadInput("id must be 1 to 64 characters", field="id")
        program = await info.context.program()
        doc = await info.context.services.catalog.create(
            spec,
            input.stock,
            program,
            input.id,
            kind=str(input.kind.value),  # type: ignore[attr-defined]
            cancel_window_minutes=input.cancel_window_minutes,
            audit=_audit(info, who, AuditAction.GIFT_CREATE),
        )
        return Gift.of(doc, info.context.now)

    @strawberry.mutation(description="Admins: change a gift's details, price, permission or limits.")
    async def update_gift(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateGiftInput,
        expected_version: Annotated[
            int | None,
            strawberry.argument(description="The gift version this edit is based on; CONFLICT if it changed since."),
        ] = None,
    ) -> Gift:
        who = require_permission(info.context.principal, Permission.CATALOG_MANAGE)
        program = await info.context.program()
        catalog = info.context.services.catalog
        audit = _audit(info, who, AuditAction.GIFT_UPDATE)
        doc = await catalog.update(str(id), input.changes(), program, expected_version=expected_version, audit=audit)
        return Gift.of(doc, info.context.now)

    @strawberry.mutation(description="Admins: add stock; a sold-out gift is back on sale at once.")
    async def restock_gift(self, info: Info, id: strawberry.ID, quantity: int) -> Gift:
        who = require_permission(info.context.principal, Permission.CATALOG_MANAGE)
        audit = _audit(info, who, AuditAction.GIFT_RESTOCK)
        return Gift.of(await info.context.services.catalog.restock(str(id), quantity, audit=audit), info.context.now)

    @strawberry.mutation(description="Admins: list now (a future start or a past end is dropped).")
    async def list_gift(self, info: Info, id: strawberry.ID) -> Gift:
        who = require_permission(info.context.principal, Permission.CATALOG_MANAGE)
        audit = _audit(info, who, AuditAction.GIFT_LIST)
        return Gift.of(await info.context.services.catalog.set_listed(str(id), True, audit=audit), info.context.now)

    @strawberry.mutation(description="Admins: take off sale (kept, with its orders).")
    async def unlist_gift(self, info: Info, id: strawberry.ID) -> Gift:
        who = require_permission(info.context.principal, Permission.CATALOG_MANAGE)
        audit = _audit(info, who, AuditAction.GIFT_UNLIST)
        return Gift.of(await info.context.services.catalog.set_listed(str(id), False, audit=audit), info.context.now)

    @strawberry.mutation(description="Admins: 定时上架, on sale from startsAt until endsAt (open-ended if null).")
    async def schedule_gift(
        self, info: Info, id: strawberry.ID, starts_at: datetime, ends_at: datetime | None = None
    ) -> Gift:
        who = require_permission(info.context.principal, Permission.CATALOG_MANAGE)
        program = await info.context.program()
        audit = _audit(info, who, AuditAction.GIFT_SCHEDULE)
        return Gift.of(
            await info.context.services.catalog.schedule(str(id), starts_at, ends_at, program, audit=audit),
            info.context.now,
        )

    @strawberry.mutation(description="Admins: 限时兑换, a special points price inside a window (replaces any).")
    async def set_gift_offer(self, info: Info, id: strawberry.ID, input: GiftOfferInput) -> Gift:
        who = require_permission(info.context.principal, Permission.CATALOG_MANAGE)
        catalog = info.context.services.catalog
        audit = _audit(info, who, AuditAction.GIFT_OFFER_SET)
        offer = await catalog.set_offer(str(id), input.points, input.starts_at, input.ends_at, audit=audit)
        return Gift.of(offer, info.context.now)

    @strawberry.mutation(description="Admins: remove a gift's limited-time offer.")
    async def clear_gift_offer(self, info: Info, id: strawberry.ID) -> Gift:
        who = require_permission(info.context.principal, Permission.CATALOG_MANAGE)
        audit = _audit(info, who, AuditAction.GIFT_OFFER_CLEAR)
        return Gift.of(await info.context.services.catalog.clear_offer(str(id), audit=audit), info.context.now)

    @strawberry.mutation(description="Admins: delete a gift nobody ever redeemed (else GIFT_HAS_REDEMPTIONS).")
    async def delete_gift(self, info: Info, id: strawberry.ID) -> bool:
        who = require_permission(info.context.principal, Permission.CATALOG_MANAGE)
        await info.context.services.catalog.delete(str(id), audit=_audit(info, who, AuditAction.GIFT_DELETE))
        return True

    @strawberry.mutation(
        description="Redeem a gift for a member (that member or an admin): points, stock and order in one "
        "transaction. Fails with NOT_LISTED, OUT_OF_STOCK, TIER_TOO_LOW, LIMIT_REACHED, INSUFFICIENT_POINTS. A points "
        "+ cash order is AWAITING_PAYMENT (points held, stock taken) until its payment is confirmed."
    )
    async def redeem_gift(self, info: Info, input: RedeemGiftInput) -> Redemption:
        who = require_self_or(info.context.principal, input.member_id, Permission.SHOP_BACKEND)
        request = RedeemRequest(
            member_id=input.member_id,
            gift_id=input.gift_id,
            quantity=input.quantity,
            idempotency_key=input.idempotency_key,
            cash_paid=input.cash_paid,
        )
        order = await info.context.services.redemptions.redeem(who, request)
        info.context.forget_member(input.member_id)
        return Redemption.of(order)

    @strawberry.mutation(
        description="Admin or the payments service (JWT role `payments`): the cash part of a points + cash order "
        "was paid. `amount` must equal cashDue; the held points are spent and the order is PLACED. Repeating it "
        "with the same reference returns the order; after paymentDueAt it fails with PAYMENT_EXPIRED."
    )
    async def confirm_redemption_payment(
        self, info: Info, id: strawberry.ID, payment_reference: str, amount: int
    ) -> Redemption:
        who = require_principal(info.context.principal)
        if who.role is not Role.PAYMENTS:
            require_permission(who, Permission.SHOP_BACKEND)
        audit = info.context.services.admin_audit.recorder(who, AuditAction.PAYMENT_CONFIRM, "order")
        redemptions = info.context.services.redemptions
        order = await redemptions.confirm_payment(who, str(id), payment_reference, amount, audit=audit)
        info.context.forget_member(order["memberId"])
        return Redemption.of(order)

    @strawberry.mutation(description="Warehouse staff (orders:fulfil): mark a placed order shipped.")
    async def fulfill_redemption(
        self, info: Info, id: strawberry.ID, carrier: str | None = None, tracking_number: str | None = None
    ) -> Redemption:
        who = require_permission(info.context.principal, Permission.ORDERS_FULFIL)
        order = await info.context.services.redemptions.fulfil(
            str(id),
            carrier=carrier,
            tracking_number=tracking_number,
            audit=info.context.services.admin_audit.recorder(who, AuditAction.ORDER_FULFIL, "order"),
        )
        return Redemption.of(order)

    @strawberry.mutation(
        description="Cancel an order: its member while awaiting payment or placed, an admin also when fulfilled. "
        "Points return with their original expiry (held points are released), stock returns to the gift."
    )
    async def cancel_redemption(self, info: Info, id: strawberry.ID, reason: str | None = None) -> Redemption:
        who = require_principal(info.context.principal)
        if who.role is not Role.MEMBER:
            require_permission(who, Permission.ORDERS_FULFIL)
        # A member cancelling their own order is not a staff action; staff cancellations are audited.
        audit = None if who.role is Role.MEMBER else _order_audit(info, who, AuditAction.ORDER_CANCEL, reason)
        order = await info.context.services.redemptions.cancel(who, str(id), reason, audit=audit)
        info.context.forget_member(order["memberId"])
        return Redemption.of(order)
