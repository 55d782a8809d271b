"""Pure partner arithmetic: conversion rounding, fees, accrual by amount, limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.errors import BadInput, DomainError
from gateway.domain.exchange import (
    AccrualRate,
    Direction,
    Fee,
    LimitExceeded,
    Rate,
    check_daily_limit,
    convert,
)

TEN_TO_ONE = Rate(10, 1)


def test_ten_to_one_converts_whole_units_and_reports_the_remainder() -> None:
    c = convert(Direction.PARTNER_TO_COALITION, 125, TEN_TO_ONE)
    assert (c.partner_points, c.coalition_points, c.fee, c.remainder) == (120, 12, 0, 5)


def test_coalition_to_partner_at_ten_to_one() -> None:
    c = convert(Direction.COALITION_TO_PARTNER, 7, TEN_TO_ONE)
    assert (c.partner_points, c.coalition_points, c.remainder) == (70, 7, 0)


def test_less_than_one_unit_converts_nothing() -> None:
    with pytest.raises(DomainError) as caught:
        convert(Direction.PARTNER_TO_COALITION, 9, TEN_TO_ONE)
    assert caught.value.code == "CONVERSION_TOO_SMALL"
    with pytest.raises(DomainError):
        convert(Direction.COALITION_TO_PARTNER, 2, Rate(1, 3))


def test_rates_are_reduced_so_units_are_as_small_as_possible() -> None:
    c = convert(Direction.PARTNER_TO_COALITION, 7, Rate(10, 4))  # 5:2
    assert (c.partner_points, c.coalition_points, c.remainder) == (5, 2, 2)
    back = convert(Direction.COALITION_TO_PARTNER, 5, Rate(10, 4))
    assert (back.coalition_points, back.partner_points, back.remainder) == (4, 10, 1)


def test_fee_rounds_up_and_is_taken_in_coalition_points() -> None:
    fee = Fee(basis_points=250, fixed=1)  # 2.5% + 1
    assert fee.on(0) == 0 and fee.on(40) == 2 and fee.on(41) == 3
    into = convert(Direction.PARTNER_TO_COALITION, 410, TEN_TO_ONE, fee)
    assert (into.coalition_points, into.fee, into.gross_coalition) == (38, 3, 41)
    out = convert(Direction.COALITION_TO_PARTNER, 41, TEN_TO_ONE, fee)
    assert (out.coalition_points, out.partner_points, out.fee, out.gross_coalition) == (44, 410, 3, 41)


def test_fee_larger_than_the_conversion_is_refused() -> None:
    with pytest.raises(DomainError) as caught:
        convert(Direction.PARTNER_TO_COALITION, 10, TEN_TO_ONE, Fee(fixed=1))
    assert caught.value.code == "CONVERSION_TOO_SMALL"


@given(
    offered=st.integers(1, 10**7),
    p=st.integers(1, 1000),
    c=st.integers(1, 1000),
    bps=st.integers(0, 2000),
    direction=st.sampled_from(Direction),
)
def test_rounding_never_creates_points(offered: int, p: int, c: int, bps: int, direction: Direction) -> None:
    try:
        conv = convert(direction, offered, Rate(p, c), Fee(basis_points=bps))
    except DomainError:
        return
    # Value is exact in units: partner_points * c == gross coalition * p, never more coalition than the value.
    assert conv.partner_points * c == conv.gross_coalition * p
    assert 0 <= conv.remainder < (p if direction is Direction.PARTNER_TO_COALITION else c)
    if direction is Direction.PARTNER_TO_COALITION:
        assert conv.partner_points + conv.remainder == offered
        assert conv.coalition_points * p <= offered * c
    else:
        assert conv.gross_coalition + conv.remainder == offered
        assert conv.coalition_points >= conv.gross_coalition


def test_invalid_terms_are_bad_input() -> None:
    with pytest.raises(BadInput):
        Rate(0, 1).validated()
    with pytest.raises(BadInput):
        Fee(basis_points=10_001).validated()
    with pytest.raises(BadInput):
        AccrualRate(0, 100).validated()
    with pytest.raises(BadInput):
        convert(Direction.PARTNER_TO_COALITION, 0, TEN_TO_ONE)


def test_accrual_by_amount_rounds_down() -> None:
    assert AccrualRate().points_for(12_399) == 123  # ¥123.99 → 123 points at 1 per ¥1
    assert AccrualRate(points=1, per_fen=1000).points_for(999) == 0
    with pytest.raises(BadInput):
        AccrualRate().points_for(0)


def test_daily_limit_allows_up_to_and_refuses_over() -> None:
    check_daily_limit("ACCRUE", 500, 500)
    check_daily_limit("ACCRUE", 10**9, None)
    with pytest.raises(LimitExceeded) as caught:
        check_daily_limit("BURN", 501, 500)
    assert caught.value.code == "PARTNER_LIMIT_EXCEEDED"
