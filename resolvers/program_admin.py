"""Admin GraphQL over the program configuration: read it, change earning rules and settings."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import strawberry

from gateway.core.errors import BadInput
from gateway.core.permissions import Permission, require_permission
from gateway.domain import program as cfg
from gateway.features.program_admin import ConfigAudit, update_program, update_tiers
from gateway.store.program import load_versioned
from resolvers.context import Info
from resolvers.enums import graphql_enum
from resolvers.program_types import Tier

TierBasis = graphql_enum(cfg.TierBasis)
ExpiryMode = graphql_enum(cfg.ExpiryMode)


@strawberry.type
class StreakBonus:
    days: int
    bonus: int


@strawberry.type
class BehaviourRule:
    event: str
    points: int


@strawberry.type(description="Per-member earn cap of one rule (PURCHASE, CHECK_IN, REFERRAL or a behaviour).")
class EarnCap:
    rule: str
    daily: int | None
    monthly: int | None


@strawberry.type(description="How points are earned. Multipliers are percents: 200 = double.")
class EarningRules:
    purchase_points: int = strawberry.field(description="Points per purchaseUnitFen spent.")
    purchase_unit_fen: int
    member_day_weekdays: list[int] = strawberry.field(description="0 = Monday.")
    member_day_month_days: list[int]
    member_day_multiplier_percent: int
    birthday_multiplier_percent: int
    paid_member_multiplier_percent: int
    check_in_points: int
    check_in_streak_bonuses: list[StreakBonus]
    referral_points: int
    behaviours: list[BehaviourRule]
    caps: list[EarnCap]

    @classmethod
    def of(cls, rules: cfg.EarningRules) -> EarningRules:
        return cls(
            purchase_points=rules.purchase_points,
            purchase_unit_fen=rules.purchase_unit_fen,
            member_day_weekdays=list(rules.member_day_weekdays),
            member_day_month_days=list(rules.member_day_month_days),
            member_day_multiplier_percent=rules.member_day_multiplier_percent,
            birthday_multiplier_percent=rules.birthday_multiplier_percent,
            paid_member_multiplier_percent=rules.paid_member_multiplier_percent,
            check_in_points=rules.check_in_points,
            check_in_streak_bonuses=[StreakBonus(days=b.days, bonus=b.bonus) for b in rules.check_in_streak_bonuses],
            referral_points=rules.referral_points,
            behaviours=[BehaviourRule(event=e, points=p) for e, p in sorted(rules.behaviours.items())],
            caps=[EarnCap(rule=r, daily=c.daily, monthly=c.monthly) for r, c in sorted(rules.caps.items())],
        )


@strawberry.type
class GrowthRules:
    per_yuan: int
    check_in: int
    behaviour: int


@strawberry.type
class ExpiryPolicy:
    mode: ExpiryMode  # type: ignore[valid-type]
    days: int
    clearing_month: int
    clearing_day: int


@strawberry.type
class DeductionRules:
    points_per_yuan: int = strawberry.field(description="N points = ¥1 at checkout.")
    max_percent_of_order: int


@strawberry.type
class TierPolicy:
    basis: TierBasis  # type: ignore[valid-type]
    validity_days: int | None


@strawberry.type(description="The whole program configuration (admins only).")
class ProgramConfig:
    version: int = strawberry.field(
        description="Increments on every change; send it back as expectedVersion to refuse a stale edit (CONFLICT)."
    )
    name: str
    timezone: str
    currency: str
    pending_days: int
    allow_negative_balance: bool
    implicit_join_on_purchase: bool
    tiers: list[Tier]
    tier_policy: TierPolicy
    earning: EarningRules
    growth: GrowthRules
    expiry: ExpiryPolicy
    deduction: DeductionRules

    @classmethod
    def of(cls, p: cfg.Program, version: int) -> ProgramConfig:
        return cls(
            version=version,
            name=p.name,
            timezone=p.timezone,
            currency=p.currency,
            pending_days=p.pending_days,
            allow_negative_balance=p.allow_negative_balance,
            implicit_join_on_purchase=p.implicit_join_on_purchase,
            tiers=[Tier.of(t) for t in p.tiers],
            tier_policy=TierPolicy(
                basis=TierBasis(p.tier_policy.basis.value), validity_days=p.tier_policy.validity_days
            ),
            earning=EarningRules.of(p.earning),
            growth=GrowthRules(per_yuan=p.growth.per_yuan, check_in=p.growth.check_in, behaviour=p.growth.behaviour),
            expiry=ExpiryPolicy(
                mode=ExpiryMode(p.expiry.mode.value),
                days=p.expiry.days,
                clearing_month=p.expiry.clearing_month,
                clearing_day=p.expiry.clearing_day,
            ),
            deduction=DeductionRules(
                points_per_yuan=p.deduction.points_per_yuan, max_percent_of_order=p.deduction.max_percent_of_order
            ),
        )


@strawberry.input
class StreakBonusInput:
    days: int
    bonus: int


@strawberry.input
class BehaviourRuleInput:
    event: str
    points: int


@strawberry.input
class EarnCapInput:
    rule: str
    daily: int | None = None
    monthly: int | None = None


@strawberry.input(description="Only the fields given change; lists replace the whole list.")
class EarningRulesInput:
    purchase_points: int | None = None
    purchase_unit_fen: int | None = None
    member_day_weekdays: list[int] | None = None
    member_day_month_days: list[int] | None = None
    member_day_multiplier_percent: int | None = None
    birthday_multiplier_percent: int | None = None
    paid_member_multiplier_percent: int | None = None
    check_in_points: int | None = None
    check_in_streak_bonuses: list[StreakBonusInput] | None = None
    referral_points: int | None = None
    behaviours: list[BehaviourRuleInput] | None = None
    caps: list[EarnCapInput] | None = None


@strawberry.input
class GrowthRulesInput:
    per_yuan: int | None = None
    check_in: int | None = None
    behaviour: int | None = None


@strawberry.input
class ExpiryPolicyInput:
    mode: ExpiryMode | None = None  # type: ignore[valid-type]
    days: int | None = None
    clearing_month: int | None = None
    clearing_day: int | None = None


@strawberry.input
class DeductionRulesInput:
    points_per_yuan: int | None = None
    max_percent_of_order: int | None = None


@strawberry.input
class TierPolicyInput:
    basis: TierBasis | None = None  # type: ignore[valid-type]
    validity_days: int | None = strawberry.field(default=None, description="0 removes the validity window.")


@strawberry.input(description="Program settings; only the fields given change.")
class ProgramSettingsInput:
    name: str | None = None
    timezone: str | None = None
    pending_days: int | None = None
    allow_negative_balance: bool | None = None
    implicit_join_on_purchase: bool | None = None
    tier_policy: TierPolicyInput | None = None
    growth: GrowthRulesInput | None = None
    expiry: ExpiryPolicyInput | None = None
    deduction: DeductionRulesInput | None = None


@strawberry.input
class QuotaInput:
    count: int
    period: str = strawberry.field(description="DAY, WEEK, MONTH or YEAR.")


@strawberry.input
class BenefitInput:
    code: str
    description: str
    quota: QuotaInput | None = None


@strawberry.input(description="A tier; thresholds are fen of spend, or growth value when tierPolicy.basis is GROWTH.")
class TierInput:
    code: str
    name: str
    threshold: int
    price_percent: int
    earn_multiplier_percent: int = 100
    can_redeem_gifts: bool = False
    benefits: list[BenefitInput] = strawberry.field(default_factory=list)


def _changes(obj: Any) -> dict[str, Any]:
    """The fields a client set, as plain nested data (enums to values)."""
    out: dict[str, Any] = {}
    for name, value in vars(obj).items():
        if value is None:
            continue
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, list):
            value = [_changes(v) if hasattr(v, "__dict__") else v for v in value]
        elif hasattr(value, "__dict__"):
            value = _changes(value)
        out[name] = value
    return out


def earning_changes(data: EarningRulesInput) -> dict[str, Any]:
    changes = _changes(data)
    if "behaviours" in changes:
        changes["behaviours"] = {b["event"]: b["points"] for b in changes["behaviours"]}
    if "caps" in changes:
        changes["caps"] = {c.pop("rule"): c for c in changes["caps"]}
    return changes


@strawberry.input(description="Where the holders of a removed tier go.")
class TierReplacementInput:
    code: str = strawberry.field(description="The removed tier's code.")
    replacement: str = strawberry.field(description="A tier code of the new list.")


ExpectedVersion = Annotated[
    int | None,
    strawberry.argument(
        description="The program version this edit is based on; CONFLICT if it changed since. Omit to apply on top."
    ),
]


@strawberry.type
class ProgramAdminQuery:
    @strawberry.field(description="The full program configuration (admins only).")
    async def program(self, info: Info) -> ProgramConfig:
        require_permission(info.context.principal, Permission.RULES_MANAGE)
        program, version = await load_versioned(info.context.services.db)
        return ProgramConfig.of(program, version)


@strawberry.type
class ProgramAdminMutation:
    @strawberry.mutation(description="Change earning rules (admins only); invalid rules → BAD_USER_INPUT.")
    async def update_earning_rules(
        self,
        info: Info,
        input: EarningRulesInput,
        expected_version: ExpectedVersion = None,
    ) -> ProgramConfig:
        who = require_permission(info.context.principal, Permission.RULES_MANAGE)
        program, version = await update_program(
            info.context.services.db,
            {"earning": earning_changes(input)},
            expected_version=expected_version,
            audit=ConfigAudit(info.context.services.admin_audit, who, "earning"),
        )
        info.context.remember_program(program)
        return ProgramConfig.of(program, version)

    @strawberry.mutation(description="Change program settings (admins only); invalid settings → BAD_USER_INPUT.")
    async def update_program(
        self,
        info: Info,
        input: ProgramSettingsInput,
        expected_version: ExpectedVersion = None,
    ) -> ProgramConfig:
        who = require_permission(info.context.principal, Permission.RULES_MANAGE)
        changes = _changes(input)
        policy = changes.get("tier_policy")
        if policy is not None and policy.get("validity_days") == 0:
            policy["validity_days"] = None
        audit = ConfigAudit(info.context.services.admin_audit, who, "settings")
        program, version = await update_program(
            info.context.services.db, changes, expected_version=expected_version, audit=audit
        )
        info.context.remember_program(program)
        return ProgramConfig.of(program, version)

    @strawberry.mutation(
        description="Replace the tiers, lowest first (admins only). A tier's code is its stable id: renaming "
        "keeps the code. Removing a tier that members hold or gifts require fails with TIER_IN_USE unless "
        "`replacements` names where they go; then they move in the same transaction. Other members move at "
        "their next purchase, refund or tier re-evaluation."
    )
    async def update_tiers(
        self,
        info: Info,
        tiers: list[TierInput],
        replacements: list[TierReplacementInput] | None = None,
        expected_version: ExpectedVersion = None,
    ) -> ProgramConfig:
        who = require_permission(info.context.principal, Permission.RULES_MANAGE)
        moves: dict[str, str] = {}
        for item in replacements or []:
            if item.code in moves:
                raise BadInput(f"Tier {item.code!r} has two replacements", field="replacements")
            moves[item.code] = item.replacement
        services = info.context.services
        program, version = await update_tiers(
            services.db,
            [_changes(t) for t in tiers],
            replacements=moves,
            now=services.clock.now(),
            expected_version=expected_version,
            audit=ConfigAudit(services.admin_audit, who, "tiers"),
        )
        info.context.remember_program(program)
        info.context.member_loader.clear_all()  # holders of a removed tier moved
        return ProgramConfig.of(program, version)
