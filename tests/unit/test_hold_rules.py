"""Pure rules of two-phase holds: transitions, deadlines and the cap re-check at posting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.holds import (
    HoldAction,
    HoldRefusal,
    HoldStatus,
    deadline,
    deduction_cap_at_posting,
    is_due_for_void,
    transition,
)
from gateway.domain.program import DeductionRules

NOW = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=30)


def test_a_held_hold_posts_before_its_deadline_and_voids_any_time():
    assert transition(HoldStatus.HELD, HoldAction.POST, expires_at=LATER, now=NOW).to is HoldStatus.POSTED
    assert transition(HoldStatus.HELD, HoldAction.VOID, expires_at=LATER, now=NOW).to is HoldStatus.VOIDED
    assert transition(HoldStatus.HELD, HoldAction.VOID, expires_at=NOW, now=LATER).to is HoldStatus.VOIDED


def test_a_hold_past_its_deadline_cannot_post():
    late = transition(HoldStatus.HELD, HoldAction.POST, expires_at=LATER, now=LATER)
    assert (late.to, late.refusal) == (None, HoldRefusal.HOLD_EXPIRED)


def test_settled_holds_refuse_except_a_repeated_void():
    posted_post = transition(HoldStatus.POSTED, HoldAction.POST, expires_at=LATER, now=NOW)
    posted_void = transition(HoldStatus.POSTED, HoldAction.VOID, expires_at=LATER, now=NOW)
    voided_post = transition(HoldStatus.VOIDED, HoldAction.POST, expires_at=LATER, now=NOW)
    voided_void = transition(HoldStatus.VOIDED, HoldAction.VOID, expires_at=LATER, now=NOW)
    assert posted_post.refusal is posted_void.refusal is HoldRefusal.HOLD_ALREADY_POSTED
    assert voided_post.refusal is HoldRefusal.HOLD_ALREADY_VOIDED
    assert (voided_void.to, voided_void.refusal, voided_void.changes) == (None, None, False)


@given(
    status=st.sampled_from(list(HoldStatus)),
    action=st.sampled_from(list(HoldAction)),
    minutes=st.integers(-120, 120),
)
def test_only_a_held_hold_ever_changes_and_never_both_changes_and_refuses(status, action, minutes):
    outcome = transition(status, action, expires_at=NOW + timedelta(minutes=minutes), now=NOW)
    assert not (outcome.changes and outcome.refusal)
    if status is not HoldStatus.HELD:
        assert not outcome.changes
    if outcome.changes:
        assert outcome.to is (HoldStatus.POSTED if action is HoldAction.POST else HoldStatus.VOIDED)


def test_deadline_and_sweeper_due():
    assert deadline(NOW, 30) == LATER
    with pytest.raises(ValueError):
        deadline(NOW, 0)
    assert is_due_for_void(HoldStatus.HELD, LATER, LATER)
    assert not is_due_for_void(HoldStatus.HELD, LATER, NOW)
    assert not is_due_for_void(HoldStatus.POSTED, NOW, LATER)


def test_cap_is_rechecked_against_the_order_as_really_paid():
    rules = DeductionRules()  # 100 points = ¥1, at most 50% of the order
    honest = deduction_cap_at_posting(2_000, 2_000, 8_000, rules)  # ¥100 order: ¥20 points + ¥80 cash
    assert (honest.order_amount_fen, honest.max_points, honest.over_cap) == (10_000, 5_000, False)
    # claimed a ¥10,000 order at checkout to use 500,000 points, then paid ¥10 in cash
    inflated = deduction_cap_at_posting(500_000, 500_000, 1_000, rules)
    assert inflated.over_cap and inflated.max_points == 250_500


@given(points=st.integers(1, 10**6), paid=st.integers(0, 10**8), percent=st.integers(0, 100))
def test_at_half_the_order_the_points_may_be_worth_at_most_the_cash(points, paid, percent):
    rules = DeductionRules(points_per_yuan=100, max_percent_of_order=percent)
    check = deduction_cap_at_posting(points, points, paid, rules)  # 1 point = 1 fen
    assert check.over_cap == (points > (paid + points) * percent // 100)
