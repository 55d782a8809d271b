"""Which tier a member is in, and what is left to reach the next one."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain.program import Benefit, Program, Tier, TierBasis


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


def lifetime_value(program: Program, *, lifetime_spend: int, growth: int) -> int:
    """What tiers are judged on without a validity window: lifetime spend or growth, per the program."""
    return growth if program.tier_policy.basis is TierBasis.GROWTH else lifetime_spend


@dataclass(frozen=True)
class NextTier:
    tier: Tier
    remaining: int
    benefits_gained: tuple[Benefit, ...]


def tier_rank(code: str, tiers: tuple[Tier, ...]) -> int | None:
    """Where a tier stands in the program (0 = lowest); None for a code the program does not have."""
    for index, tier in enumerate(tiers):
        if tier.code == code:
            return index
    return None


def next_tier(value: int, tiers: tuple[Tier, ...], held: str | None = None) -> NextTier | None:
    """The tier above the one held (or reached by ``value``), how far ``value`` is from it,
    and what it adds; None at the top.

    With a rolling validity window the tier held can be above what the window's
    value alone reaches (downgrades wait for re-evaluation), so "next" counts
    from whichever is higher.
    """
    rank = tier_rank(tier_for(value, tiers).code, tiers) or 0
    held_rank = tier_rank(held, tiers) if held is not None else None
    if held_rank is not None:
        rank = max(rank, held_rank)
    if rank + 1 >= len(tiers):
        return None
    current, upcoming = tiers[rank], tiers[rank + 1]
    gained = tuple(b for b in upcoming.benefits if b not in current.benefits)
    return NextTier(tier=upcoming, remaining=max(upcoming.threshold - value, 0), benefits_gained=gained)
