"""Coupon code pools (virtual gifts) as clients see them."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gateway.core.clock import as_utc
from gateway.domain.coupons import GiftKind as DomainGiftKind
from gateway.domain.coupons import PoolCounts
from gateway.features.coupons import BatchCounts, GenerateResult, ImportResult, IssuedCode, PoolStatus, VoidResult
from resolvers.enums import graphql_enum

GiftKind = graphql_enum(
    DomainGiftKind,
    "GiftKind",
    "PHYSICAL: shipped, stock set by hand. VIRTUAL: a coupon code from the gift's pool, fulfilled at once; "
    "its stock is the pool's unused codes.",
)
KINDS = {kind: GiftKind(kind.value) for kind in DomainGiftKind}


@strawberry.type(
    description="A pool's codes by what they are now; total = available + assigned + used + expired + void."
)
class CouponCounts:
    total: int
    available: int = strawberry.field(description="In the pool and still good: the gift's stock.")
    assigned: int = strawberry.field(description="Given to members by redemptions, not used, not expired.")
    used: int = strawberry.field(description="Reported used (markCouponUsed).")
    expired: int = strawberry.field(description="Past their expiry without being used (in the pool or assigned).")
    void: int = strawberry.field(description="Withdrawn by the operator.")

    @classmethod
    def of(cls, counts: PoolCounts) -> CouponCounts:
        return cls(
            total=counts.total,
            available=counts.available,
            assigned=counts.assigned,
            used=counts.used,
            expired=counts.expired,
            void=counts.void,
        )


@strawberry.type(description="One import or generation into a pool, and where its codes are now.")
class CouponBatch:
    id: str
    kind: str = strawberry.field(description="IMPORT or GENERATE.")
    label: str | None
    expires_at: datetime | None
    added: int
    already_in_pool: int = strawberry.field(description="Imports: codes sent again, skipped (imports are idempotent).")
    duplicate_in_input: int = strawberry.field(description="Imports: repeats inside the list sent, counted once.")
    in_another_pool: int = strawberry.field(description="Imports: codes that belong to another gift's pool, skipped.")
    created_at: datetime
    by: str
    counts: CouponCounts

    @classmethod
    def of(cls, item: BatchCounts) -> CouponBatch:
        b = item.batch
        return cls(
            id=b["_id"],
            kind=b["kind"],
            label=b.get("label"),
            expires_at=as_utc(b["expiresAt"]) if b.get("expiresAt") else None,
            added=int(b.get("added", 0)),
            already_in_pool=int(b.get("alreadyInPool", 0)),
            duplicate_in_input=int(b.get("duplicateInInput", 0)),
            in_another_pool=int(b.get("inAnotherPool", 0)),
            created_at=as_utc(b["createdAt"]),
            by=b["by"],
            counts=CouponCounts.of(item.counts),
        )


@strawberry.type(
    description="A virtual gift's code pool. The gift's stock equals counts.available (expired codes "
    "leave the stock within a minute of expiring)."
)
class CouponPool:
    gift_id: str
    counts: CouponCounts
    gift_stock: int = strawberry.field(description="The gift's stock as the mall sees it.")
    cancel_window_minutes: int = strawberry.field(
        description="How long after fulfilment a member may cancel an unused coupon (0: never)."
    )
    next_expiry: datetime | None = strawberry.field(description="When the soonest available code expires.")
    batches: list[CouponBatch]

    @classmethod
    def of(cls, status: PoolStatus) -> CouponPool:
        return cls(
            gift_id=status.gift_id,
            counts=CouponCounts.of(status.counts),
            gift_stock=status.gift_stock,
            cancel_window_minutes=status.cancel_window_minutes,
            next_expiry=as_utc(status.next_expiry) if status.next_expiry else None,
            batches=[CouponBatch.of(b) for b in status.batches],
        )


@strawberry.type
class CouponImportResult:
    batch_id: str
    added: int
    already_in_pool: int
    duplicate_in_input: int
    in_another_pool: int

    @classmethod
    def of(cls, result: ImportResult) -> CouponImportResult:
        return cls(
            batch_id=result.batch_id,
            added=result.added,
            already_in_pool=result.already_in_pool,
            duplicate_in_input=result.duplicate_in_input,
            in_another_pool=result.in_another_pool,
        )


@strawberry.type
class CouponGenerateResult:
    batch_id: str
    added: int
    replayed: bool = strawberry.field(description="True when this idempotencyKey had already generated the batch.")

    @classmethod
    def of(cls, result: GenerateResult) -> CouponGenerateResult:
        return cls(batch_id=result.batch_id, added=result.added, replayed=result.replayed)


@strawberry.type
class CouponVoidResult:
    voided: int
    not_available: int = strawberry.field(description="Codes of this pool already assigned, used, expired or void.")
    not_found: int = strawberry.field(description="Codes not in this pool.")

    @classmethod
    def of(cls, result: VoidResult) -> CouponVoidResult:
        return cls(voided=result.voided, not_available=result.not_available, not_found=result.not_found)


@strawberry.type(description="A coupon code a redemption gave its member. Only that member and admins see it.")
class IssuedCoupon:
    code: str
    expires_at: datetime | None
    status: str = strawberry.field(description="ISSUED, USED or EXPIRED.")
    used_at: datetime | None

    @classmethod
    def of(cls, issued: IssuedCode) -> IssuedCoupon:
        return cls(code=issued.code, expires_at=issued.expires_at, status=issued.status, used_at=issued.used_at)


@strawberry.type(description="A coupon reported used.")
class CouponUse:
    gift_id: str
    redemption_id: str
    used_at: datetime
    reference: str
