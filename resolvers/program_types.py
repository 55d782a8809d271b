"""GraphQL views of the program configuration."""

from __future__ import annotations

import strawberry

from gateway.domain import program as cfg
from resolvers.enums import graphql_enum

Period = graphql_enum(cfg.Period, "Period")


@strawberry.type
class Quota:
    count: int
    period: Period  # type: ignore[valid-type]


@strawberry.type
class Benefit:
    code: str
    description: str
    quota: Quota | None

    @classmethod
    def of(cls, benefit: cfg.Benefit) -> Benefit:
        quota = Quota(count=benefit.quota.count, period=Period(benefit.quota.period.value)) if benefit.quota else None
        return cls(code=benefit.code, description=benefit.description, quota=quota)


# id(configured tier) -> (that tier, kept so the id stays its own; its view). Bounded: programs change rarely.
_TIER_VIEWS: dict[int, tuple[cfg.Tier, Tier]] = {}
TIER_VIEWS_LIMIT = 256


@strawberry.type(description="A membership level; thresholds are fen of lifetime spend, or growth value.")
class Tier:
    code: str
    name: str
    threshold: int
    price_percent: int = strawberry.field(description="Share of list price a member pays: 95 = 5% off.")
    earn_multiplier_percent: int
    can_redeem_gifts: bool
    benefits: list[Benefit]

    @classmethod
    def of(cls, tier: cfg.Tier) -> Tier:
        """The view of a configured tier, made once per tier object: the program is cached in process
        (gateway/store/program.py), so every request asking for tiers gets the same objects, and
        views are only ever read."""
        cached = _TIER_VIEWS.get(id(tier))
        if cached is not None and cached[0] is tier:
            return cached[1]
        view = cls._build(tier)
        if len(_TIER_VIEWS) >= TIER_VIEWS_LIMIT:
            _TIER_VIEWS.clear()
        _TIER_VIEWS[id(tier)] = (tier, view)
        return view

    @classmethod
    def _build(cls, tier: cfg.Tier) -> Tier:
        return cls(
            code=tier.code,
            name=tier.name,
            threshold=tier.threshold,
            price_percent=tier.price_percent,
            earn_multiplier_percent=tier.earn_multiplier_percent,
            can_redeem_gifts=tier.can_redeem_gifts,
            benefits=[Benefit.of(b) for b in tier.benefits],
        )


@strawberry.type
class NextTier:
    tier: Tier
    remaining: int = strawberry.field(description="Fen of spend (or growth value) still needed.")
    benefits_gained: list[Benefit]
