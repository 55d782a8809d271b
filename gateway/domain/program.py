"""The loyalty program's configuration: tiers, earning, expiry. Data, not code.

Stored as one document in MongoDB and seeded with the default program of
seed 000 (米马杂货) on first start; admins change it through GraphQL.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.domain.calendar import Period


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Quota(Model):
    count: int = Field(ge=1)
    period: Period


class Benefit(Model):
    code: str
    description: str
    quota: Quota | None = None


class Tier(Model):
    code: str
    name: str
    threshold: int = Field(ge=0, description="Lifetime spend in fen, or growth value, to reach it.")
    price_percent: int = Field(ge=1, le=100, description="Share of list price paid, 98 = 2% off.")
    earn_multiplier_percent: int = Field(default=100, ge=0)
    can_redeem_gifts: bool = False
    benefits: tuple[Benefit, ...] = ()


class TierBasis(StrEnum):
    SPEND = "SPEND"
    GROWTH = "GROWTH"


class TierPolicy(Model):
    basis: TierBasis = TierBasis.SPEND
    validity_days: int | None = Field(
        default=None, ge=1, description="Rolling window for re-evaluation; None keeps tiers for life."
    )


class StreakBonus(Model):
    days: int = Field(ge=2)
    bonus: int = Field(ge=0)


class EarnCap(Model):
    daily: int | None = Field(default=None, ge=0)
    monthly: int | None = Field(default=None, ge=0)


class EarningRules(Model):
    purchase_points: int = Field(default=1, ge=0, description="Points earned per purchase_unit_fen spent.")
    purchase_unit_fen: int = Field(default=100, ge=1)
    member_day_weekdays: tuple[int, ...] = Field(default=(), description="0 = Monday.")
    member_day_month_days: tuple[int, ...] = ()
    member_day_multiplier_percent: int = Field(default=200, ge=100)
    birthday_multiplier_percent: int = Field(default=200, ge=100)
    paid_member_multiplier_percent: int = Field(default=150, ge=100)
    check_in_points: int = Field(default=5, ge=0)
    check_in_streak_bonuses: tuple[StreakBonus, ...] = (
        StreakBonus(days=7, bonus=20),
        StreakBonus(days=30, bonus=100),
    )
    referral_points: int = Field(default=100, ge=0)
    behaviours: dict[str, int] = Field(
        default_factory=lambda: {"REVIEW": 10, "PHOTO_REVIEW": 20, "PROFILE_COMPLETED": 50}
    )
    caps: dict[str, EarnCap] = Field(
        default_factory=dict, description="Per rule (PURCHASE, CHECK_IN, REVIEW...) per member."
    )


class GrowthRules(Model):
    per_yuan: int = Field(default=1, ge=0)
    check_in: int = Field(default=1, ge=0)
    behaviour: int = Field(default=5, ge=0)


class ExpiryMode(StrEnum):
    NEVER = "NEVER"
    ROLLING = "ROLLING"
    ANNUAL_CLEARING = "ANNUAL_CLEARING"


class ExpiryPolicy(Model):
    mode: ExpiryMode = ExpiryMode.ROLLING
    days: int = Field(default=365, ge=1, description="ROLLING: a lot lives this many days.")
    clearing_month: int = Field(default=12, ge=1, le=12)
    clearing_day: int = Field(default=31, ge=1, le=31)


class DeductionRules(Model):
    points_per_yuan: int = Field(default=100, ge=1, description="N points = ¥1 at checkout.")
    max_percent_of_order: int = Field(default=50, ge=0, le=100)


class AnalyticsSettings(Model):
    """Dashboard settings (docs/analytics.md)."""

    cost_per_point_milli_fen: int | None = Field(
        default=None,
        ge=0,
        description="What a point costs the operator, in 1/1000 fen; None derives it from the listed catalog.",
    )
    advice_low_percent: int = Field(
        default=50, ge=0, description="Redemption rate below this: issuing outruns burning (MORE_REDEMPTION_CHANNELS)."
    )
    advice_high_percent: int = Field(
        default=100, ge=0, description="Redemption rate above this: burning outruns issuing (MORE_STOCK)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> AnalyticsSettings:
        if self.advice_low_percent > self.advice_high_percent:
            raise ValueError("advice_low_percent must not exceed advice_high_percent")
        return self


class Program(Model):
    name: str = "米马杂货 Mima Grocery"
    timezone: str = "Asia/Shanghai"
    currency: str = "CNY"
    tiers: tuple[Tier, ...]
    tier_policy: TierPolicy = TierPolicy()
    earning: EarningRules = EarningRules()
    growth: GrowthRules = GrowthRules()
    expiry: ExpiryPolicy = ExpiryPolicy()
    pending_days: int = Field(default=7, ge=0, description="Return window: purchase points stay pending.")
    deduction: DeductionRules = DeductionRules()
    allow_negative_balance: bool = False
    implicit_join_on_purchase: bool = True
    analytics: AnalyticsSettings = AnalyticsSettings()

    @model_validator(mode="after")
    def _tiers_ordered(self) -> Program:
        if not self.tiers:
            raise ValueError("a program needs at least one tier")
        thresholds = [t.threshold for t in self.tiers]
        if thresholds != sorted(thresholds) or len(set(thresholds)) != len(thresholds):
            raise ValueError("tier thresholds must be strictly increasing")
        codes = [t.code for t in self.tiers]
        if len(set(codes)) != len(codes):
            raise ValueError("tier codes must be unique")
        return self

    def tier(self, code: str) -> Tier:
        for tier in self.tiers:
            if tier.code == code:
                return tier
        return self.tiers[0]


GIFT_REDEMPTION = Benefit(code="GIFT_REDEMPTION", description="Redeem gifts in the points mall")
MEMBER_DAY_PRICES = Benefit(code="MEMBER_DAY_PRICES", description="Member-day prices")

DEFAULT_PROGRAM = Program(
    tiers=(
        Tier(code="MEMBER", name="Member 普通会员", threshold=100, price_percent=98),
        Tier(
            code="SENIOR",
            name="Senior 高级会员",
            threshold=38_000,
            price_percent=95,
            can_redeem_gifts=True,
            benefits=(GIFT_REDEMPTION, MEMBER_DAY_PRICES),
        ),
        Tier(
            code="VIP",
            name="VIP",
            threshold=200_000,
            price_percent=90,
            earn_multiplier_percent=120,
            can_redeem_gifts=True,
            benefits=(
                GIFT_REDEMPTION,
                Benefit(code="MEMBER_DAY_PRICES", description="Lower member-day prices"),
            ),
        ),
        Tier(
            code="SUPREME_VIP",
            name="Supreme VIP 至尊VIP",
            threshold=500_000,
            price_percent=86,
            earn_multiplier_percent=150,
            can_redeem_gifts=True,
            benefits=(
                GIFT_REDEMPTION,
                Benefit(code="MEMBER_DAY_PRICES", description="Lower member-day prices"),
                Benefit(
                    code="FREE_SHIPPING",
                    description="Free shipping once a month",
                    quota=Quota(count=1, period=Period.MONTH),
                ),
                Benefit(
                    code="NEW_PRODUCT_DISCOUNT",
                    description="20% off one new product a week",
                    quota=Quota(count=1, period=Period.WEEK),
                ),
            ),
        ),
    ),
    earning=EarningRules(member_day_month_days=(8,)),
)
