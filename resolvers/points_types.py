"""Views used by Member fields added for points: quota benefits and points about to expire."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from gateway.core.clock import as_utc
from gateway.domain.membership import Plan, Term
from gateway.features.benefits import BenefitUsage
from gateway.features.expiry import ExpiringPoints as ExpiringLot
from gateway.store.mongo import Document
from resolvers.enums import graphql_enum
from resolvers.program_types import Benefit

PaidMembershipPlan = graphql_enum(Plan, "PaidMembershipPlan", "MONTHLY (1 month), QUARTERLY (3), YEARLY (12).")


@strawberry.type(description="A paid-membership term: [startsAt, endsAt); renewals extend endsAt.")
class PaidMembership:
    plan: PaidMembershipPlan  # type: ignore[valid-type]
    starts_at: datetime
    ends_at: datetime = strawberry.field(description="Exclusive: the multiplier stops at this instant.")
    active: bool

    @classmethod
    def of(cls, term: Term, now: datetime) -> PaidMembership:
        return cls(
            plan=PaidMembershipPlan(term.plan.value),
            starts_at=as_utc(term.starts_at),
            ends_at=as_utc(term.ends_at),
            active=term.active_at(now),
        )


@strawberry.type(description="A tier benefit and, for quota benefits, this period's usage.")
class BenefitStatus:
    benefit: Benefit
    used: int
    remaining: int | None = strawberry.field(description="Null for benefits without a quota.")
    period_start: date | None
    period_end: date | None = strawberry.field(description="Exclusive.")

    @classmethod
    def of(cls, usage: BenefitUsage) -> BenefitStatus:
        return cls(
            benefit=Benefit.of(usage.benefit),
            used=usage.used,
            remaining=usage.remaining,
            period_start=usage.period_start,
            period_end=usage.period_end,
        )


@strawberry.type
class ExpiringPointsAt:
    points: int
    expires_at: datetime


@strawberry.type(description="Points that expire within the asked number of days, soonest first.")
class ExpiringPoints:
    total: int
    days: int
    lots: list[ExpiringPointsAt]

    @classmethod
    def of(cls, lots: list[ExpiringLot], days: int) -> ExpiringPoints:
        return cls(
            total=sum(lot.points for lot in lots),
            days=days,
            lots=[ExpiringPointsAt(points=lot.points, expires_at=lot.expires_at) for lot in lots],
        )


@strawberry.type(description="Where the member stands on the tier basis, inside the validity window if there is one.")
class TierProgress:
    basis: str = strawberry.field(description="SPEND (fen) or GROWTH (growth value).")
    value: int = strawberry.field(description="Qualifying value: lifetime, or inside the rolling window.")
    window_days: int | None = strawberry.field(description="Rolling validity window in days; null: for life.")


@strawberry.type(description="A recorded order: what it paid, earned and had refunded.")
class Purchase:
    order_id: str
    amount: int = strawberry.field(description="Fen paid.")
    refunded: int = strawberry.field(description="Fen refunded so far.")
    paid_at: datetime
    points_earned: int
    points_taken_back: int
    position: strawberry.Private[str]

    @classmethod
    def of(cls, doc: Document) -> Purchase:
        return cls(
            order_id=doc["orderId"],
            amount=doc["amount"],
            refunded=doc["refunded"],
            paid_at=as_utc(doc["paidAt"]),
            points_earned=doc["pointsEarned"],
            points_taken_back=doc["pointsTakenBack"],
            position=str(doc["_id"]),
        )
