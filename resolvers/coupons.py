"""Coupon code pools over GraphQL: pool status and changes (catalog:manage), using a coupon."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gateway.core.auth import Role, require_principal
from gateway.core.permissions import Permission, require_permission
from gateway.store.mongo import Document
from resolvers.context import Info
from resolvers.coupon_types import (
    CouponGenerateResult,
    CouponImportResult,
    CouponPool,
    CouponUse,
    CouponVoidResult,
)


@strawberry.type
class CouponQuery:
    @strawberry.field(
        description="catalog:manage: a virtual gift's code pool: codes by status, the gift's stock, batches, the "
        "next expiry. Codes themselves are never listed."
    )
    async def coupon_pool(self, info: Info, gift_id: str) -> CouponPool:
        require_permission(info.context.principal, Permission.CATALOG_MANAGE)
        return CouponPool.of(await info.context.services.coupons.status(gift_id))


@strawberry.type
class CouponMutation:
    @strawberry.mutation(
        description="catalog:manage: add codes (one per list item, trimmed) to a virtual gift's pool, at most "
        "10,000 per call (the CLI `import coupons` sends a file in parts). Idempotent: codes already in the pool "
        "are skipped and counted; repeats in the list count once; codes of another pool are skipped. A malformed "
        "line refuses the whole call. The stock rises by the codes added."
    )
    async def import_coupon_codes(
        self,
        info: Info,
        gift_id: str,
        codes: list[str],
        expires_at: datetime | None = None,
        batch_id: str | None = None,
        label: str | None = None,
    ) -> CouponImportResult:
        who = require_permission(info.context.principal, Permission.CATALOG_MANAGE)
        result = await info.context.services.coupons.import_codes(
            who, gift_id, codes, expires_at=expires_at, batch_id=batch_id, label=label
        )
        return CouponImportResult.of(result)

    @strawberry.mutation(
        description="catalog:manage: generate `count` codes `prefix + length` random characters from an "
        "unambiguous alphabet (no 0/O, 1/I/L), cryptographically random, unique across all pools. The length "
        "must give a million combinations per code in the pool. Repeat the idempotencyKey to retry safely."
    )
    async def generate_coupon_codes(
        self,
        info: Info,
        gift_id: str,
        count: int,
        idempotency_key: str,
        length: int = 10,
        prefix: str = "",
        expires_at: datetime | None = None,
    ) -> CouponGenerateResult:
        who = require_permission(info.context.principal, Permission.CATALOG_MANAGE)
        result = await info.context.services.coupons.generate(
            who,
            gift_id,
            count=count,
            prefix=prefix,
            length=length,
            expires_at=expires_at,
            idempotency_key=idempotency_key,
        )
        return CouponGenerateResult.of(result)

    @strawberry.mutation(
        description="catalog:manage: withdraw codes still in the pool (leaked, defective); the stock drops with "
        "them. Codes already given to members are left alone and counted as notAvailable."
    )
    async def void_coupon_codes(self, info: Info, gift_id: str, codes: list[str], reason: str) -> CouponVoidResult:
        who = require_permission(info.context.principal, Permission.CATALOG_MANAGE)
        return CouponVoidResult.of(await info.context.services.coupons.void(who, gift_id, codes, reason))

    @strawberry.mutation(
        description="catalog:manage: how long after fulfilment a member may cancel an unused coupon order "
        "(0 to 129,600 minutes; 0: never). Applies to orders placed from now on."
    )
    async def set_coupon_cancel_window(self, info: Info, gift_id: str, cancel_window_minutes: int) -> CouponPool:
        who = require_permission(info.context.principal, Permission.CATALOG_MANAGE)
        coupons = info.context.services.coupons
        await coupons.set_cancel_window(who, gift_id, cancel_window_minutes)
        return CouponPool.of(await coupons.status(gift_id))

    @strawberry.mutation(
        description="The storefront's checkout backend (JWT role `payments`, or shop:backend): a "
        "member applied their coupon to an order (`reference`). Only a code a fulfilled redemption gave that "
        "member can be used, once: the same reference again answers the same, another one COUPON_ALREADY_USED. "
        "A used coupon's order can no longer be cancelled."
    )
    async def mark_coupon_used(self, info: Info, code: str, member_id: str, reference: str) -> CouponUse:
        who = require_principal(info.context.principal)
        if who.role is not Role.PAYMENTS:
            require_permission(who, Permission.SHOP_BACKEND)
        doc: Document = await info.context.services.coupons.mark_used(who, code, member_id, reference)
        return CouponUse(
            gift_id=doc["giftId"], redemption_id=doc["orderId"], used_at=doc["usedAt"], reference=doc["useReference"]
        )
