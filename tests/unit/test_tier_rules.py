"""The pure tier rules of seed 000, without I/O."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.program import DEFAULT_PROGRAM
from gateway.domain.tiers import next_tier, tier_for

TIERS = DEFAULT_PROGRAM.tiers


def test_seed_000_thresholds() -> None:
    assert [tier_for(v, TIERS).code for v in (0, 100, 37_999, 38_000, 199_999, 200_000, 500_000)] == [
        "MEMBER",
        "MEMBER",
        "MEMBER",
        "SENIOR",
        "SENIOR",
        "VIP",
        "SUPREME_VIP",
    ]


def test_next_tier_from_spend_says_what_is_left_and_what_it_adds() -> None:
    upcoming = next_tier(45_000, TIERS)
    assert upcoming is not None
    assert (upcoming.tier.code, upcoming.remaining) == ("VIP", 155_000)
    assert next_tier(500_000, TIERS) is None
    supreme = next_tier(200_000, TIERS)
    assert supreme is not None
    assert {b.code for b in supreme.benefits_gained} >= {"FREE_SHIPPING", "NEW_PRODUCT_DISCOUNT"}


def test_next_tier_counts_from_the_tier_held_when_the_window_value_is_lower() -> None:
    """A VIP whose windowed spend fell to ¥400 still holds VIP until re-evaluation: next is Supreme."""
    upcoming = next_tier(40_000, TIERS, held="VIP")
    assert upcoming is not None
    assert (upcoming.tier.code, upcoming.remaining) == ("SUPREME_VIP", 460_000)
    assert next_tier(40_000, TIERS, held="SUPREME_VIP") is None


@given(st.integers(min_value=0, max_value=10_000_000), st.sampled_from([None, *[t.code for t in TIERS]]))
def test_next_tier_is_always_above_both_the_value_and_the_held_tier(value: int, held: str | None) -> None:
    codes = [t.code for t in TIERS]
    upcoming = next_tier(value, TIERS, held=held)
    floor = max(codes.index(tier_for(value, TIERS).code), codes.index(held) if held else 0)
    if upcoming is None:
        assert floor == len(codes) - 1
    else:
        assert codes.index(upcoming.tier.code) == floor + 1
        assert upcoming.remaining == max(upcoming.tier.threshold - value, 0)
