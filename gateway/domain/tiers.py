"""Which tier a member is in, and what is left to reach the next one."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.program import Benefit, Program, Tier, TierBasis


def tier_for(value: int, tiers: tuple[Tier, ...]) -> Tier:
    """The highest tier whose threshold ``value`` reaches.

    A member registered before their first purchase sits in the entry tier:
    the floor of the program, not outside it.
    """
    reached = tiers[0]
    for tier in tiers:
        if value >= tier.threshold:
            reached = tier
    return reached


def qualifying_value(program: Program, *, lifetime_spend: int, growth: int) -> int:
    return growth if program.tier_policy.basis is TierBasis.GROWTH else lifetime_spend


@dataclass(frozen=True)
class NextTier:
    tier: Tier
    remaining: int
    benefits_gained: tuple[Benefit, ...]


def next_tier(value: int, tiers: tuple[Tier, ...]) -> NextTier | None:
    """The first tier above ``value``, how far away it is and what it adds; None at the top."""
    current = tier_for(value, tiers)
    for tier in tiers:
        if tier.threshold > value and tier.threshold > current.threshold:
            gained = tuple(b for b in tier.benefits if b not in current.benefits)
            return NextTier(tier=tier, remaining=tier.threshold - value, benefits_gained=gained)
    return None
