"""Line items, campaign boosts, budgets and refunds by line: the pure rules (hypothesis where it is money)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain import campaigns as rules
from gateway.domain.earning import (
    Boost,
    LineItem,
    allocate,
    line_bonuses,
    line_items_problem,
    proportional_take_back,
    refund_by_line,
    within_budget,
)
from gateway.domain.program import DEFAULT_PROGRAM, EarningRules

EARNING = DEFAULT_PROGRAM.earning
T0 = datetime(2026, 11, 1, tzinfo=UTC)
T1 = datetime(2026, 11, 12, tzinfo=UTC)

amounts = st.integers(1, 10**6)
codes = st.sampled_from(["A", "B", "C", None])
line_items = st.lists(st.builds(LineItem, sku=st.none(), category=codes, amount=amounts), min_size=1, max_size=8)
boosts = st.lists(
    st.builds(
        Boost,
        campaign_id=st.sampled_from(["c1", "c2", "c3"]),
        multiplier_percent=st.integers(101, 1000),
        starts_at=st.just(T0),
        ends_at=st.just(T1),
        categories=st.frozensets(st.sampled_from(["A", "B", "C"]), max_size=2),
    ),
    max_size=4,
)
instants = st.datetimes(min_value=datetime(2026, 10, 1), max_value=datetime(2026, 12, 1), timezones=st.just(UTC))
earning_rules = st.builds(EarningRules, purchase_points=st.integers(0, 10), purchase_unit_fen=st.integers(1, 10_000))


def test_line_items_add_up_to_the_order_and_name_each_sku_once():
    tv, rice = LineItem("TV", "ELEC", 10_000), LineItem("RICE", "FOOD", 5_000)
    assert line_items_problem(15_000, [tv, rice]) is None
    assert "add up to 15000" in (line_items_problem(15_001, [tv, rice]) or "")
    assert line_items_problem(20_000, [tv, tv]) is not None
    assert line_items_problem(0, []) is not None
    assert line_items_problem(1, [LineItem(None, None, 0), LineItem(None, None, 1)]) is not None
    assert line_items_problem(2, [LineItem(None, "X", 1), LineItem(None, "X", 1)]) is None  # no SKU: fine


@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=20))
def test_allocate_splits_exactly_and_fairly(total, weights):
    if sum(weights) == 0:
        if total:
            with pytest.raises(ValueError):
                allocate(total, weights)
        return
    shares = allocate(total, weights)
    assert sum(shares) == total
    for share, weight in zip(shares, weights, strict=True):
        exact = total * weight / sum(weights)
        assert share >= 0 and abs(share - exact) < 1
        if weight == 0:
            assert share == 0


@given(line_items, boosts, instants, earning_rules)
def test_bonuses_are_never_negative_and_only_inside_the_window(lines, boosts, at, rules_):
    bonuses = line_bonuses(lines, boosts, at, rules_)
    assert len(bonuses) == len(lines)
    for line, bonus in zip(lines, bonuses, strict=True):
        assert bonus.points >= 0
        if not T0 <= at < T1:
            assert bonus == (None, 0) or bonus.campaign_id is None
        if bonus.campaign_id is not None:
            chosen = [b for b in boosts if b.campaign_id == bonus.campaign_id and b.matches(line)]
            assert chosen and all(b.active_at(at) for b in chosen)
            best = max(b.multiplier_percent for b in boosts if b.matches(line))
            expected = line.amount * rules_.purchase_points * (best - 100) // (rules_.purchase_unit_fen * 100)
            assert bonus.points == expected


def test_no_boost_for_a_line_that_matches_none_and_ties_go_to_the_smaller_id():
    food = LineItem("RICE", "FOOD", 10_000)
    elec = Boost("c2", 300, T0, T1, categories=frozenset({"ELEC"}))
    assert line_bonuses([food], [elec], T0, EARNING)[0].points == 0
    everything_a = Boost("c9", 200, T0, T1)
    everything_b = Boost("c1", 200, T0, T1)
    assert line_bonuses([food], [everything_a, everything_b], T0, EARNING)[0].campaign_id == "c1"
    sku = Boost("c3", 500, T0, T1, skus=frozenset({"RICE"}))
    assert line_bonuses([food], [everything_a, sku], T0, EARNING)[0].points == 400


@given(
    st.integers(-10, 10**6),
    st.none() | st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.none() | st.integers(0, 10**6),
    st.integers(0, 10**6),
)
def test_a_budget_and_a_member_cap_are_never_overspent(wanted, budget, spent, cap, earned):
    allowed = within_budget(wanted, budget, spent, member_cap=cap, member_earned=earned)
    assert 0 <= allowed <= max(wanted, 0)
    if budget is not None:
        assert spent + allowed <= max(budget, spent)
    if cap is not None:
        assert earned + allowed <= max(cap, earned)


@given(
    st.lists(st.tuples(st.integers(1, 10**5), st.integers(0, 10**4), st.integers(0, 10**4)), min_size=1, max_size=6),
    st.lists(st.integers(1, 10**5), min_size=1, max_size=10),
)
def test_partial_refunds_by_amount_take_back_exactly_what_the_lines_earned(lines, refunds):
    """However an order is refunded (amounts spread over lines), points and bonuses taken back add up
    to what it earned once it is fully refunded, and never exceed it before."""
    amount = [a for a, _, _ in lines]
    points = [p for _, p, _ in lines]
    bonus = [b for _, _, b in lines]
    refunded = [0] * len(lines)
    taken_points = taken_bonus = 0
    total = sum(amount)
    for want in [*refunds, total]:
        left = total - sum(refunded)
        now = min(want, left)
        if now == 0:
            break
        shares = refund_by_line(list(zip(amount, refunded, strict=True)), now)
        assert sum(shares) == now
        for i, share in enumerate(shares):
            assert 0 <= share <= amount[i] - refunded[i]
            taken_points += proportional_take_back(points[i], amount[i], refunded[i], share)
            taken_bonus += proportional_take_back(bonus[i], amount[i], refunded[i], share)
            refunded[i] += share
        assert 0 <= taken_points <= sum(points) and 0 <= taken_bonus <= sum(bonus)
    assert refunded == amount
    assert (taken_points, taken_bonus) == (sum(points), sum(bonus))


def test_refund_by_line_refuses_more_than_is_left():
    with pytest.raises(ValueError):
        refund_by_line([(100, 60)], 41)


def spec(**overrides):
    fields = {
        "name": "Double 11",
        "starts_at": T0,
        "ends_at": T1,
        "boosts": (rules.BoostSpec(200, ("ELEC",)),),
        "budget_points": 1_000,
    }
    return rules.CampaignSpec(**{**fields, **overrides})


def test_status_follows_time_budget_and_cancellation():
    kw = {"budget_points": 100, "spent_points": 0, "cancelled": False}
    assert rules.status(T0 - timedelta(seconds=1), T0, T1, **kw) == rules.CampaignStatus.SCHEDULED
    assert rules.status(T0, T0, T1, **kw) == rules.CampaignStatus.ACTIVE
    assert rules.status(T1, T0, T1, **kw) == rules.CampaignStatus.ENDED
    assert rules.status(T0, T0, T1, **{**kw, "spent_points": 100}) == rules.CampaignStatus.EXHAUSTED
    assert rules.status(T0, T0, T1, **{**kw, "cancelled": True}) == rules.CampaignStatus.CANCELLED


def test_spec_problems_name_their_field():
    assert rules.spec_problem(spec()) is None
    cases = {
        "name": spec(name=" "),
        "endsAt": spec(ends_at=T0),
        "budgetPoints": spec(budget_points=0),
        "multiplierPercent": spec(boosts=(rules.BoostSpec(100),)),
        "boosts": spec(boosts=(rules.BoostSpec(200, ("bad code",)),)),
    }
    for field, bad in cases.items():
        problem = rules.spec_problem(bad)
        assert problem is not None and problem.field == field
    assert rules.spec_problem(spec(ends_at=T0 + timedelta(days=400))).field == "endsAt"  # type: ignore[union-attr]


def test_a_started_campaign_keeps_its_start_boosts_and_cap_and_never_drops_below_what_it_gave():
    current = spec()
    during = T0 + timedelta(days=1)
    assert rules.change_problem(current, 500, spec(ends_at=T1 + timedelta(days=1)), during) is None
    assert rules.change_problem(current, 500, spec(starts_at=T0 + timedelta(hours=1)), during).field == "startsAt"
    assert rules.change_problem(current, 500, spec(boosts=(rules.BoostSpec(300),)), during).field == "boosts"
    assert rules.change_problem(current, 500, spec(budget_points=499), during).field == "budgetPoints"
    assert rules.change_problem(current, 500, spec(ends_at=during - timedelta(hours=1)), during).field == "endsAt"
    assert rules.change_problem(current, 0, spec(member_cap_points=5), during).field == "memberCapPoints"
    before = T0 - timedelta(days=1)
    assert rules.change_problem(current, 0, spec(boosts=(rules.BoostSpec(300),)), before) is None
    assert rules.change_problem(current, 0, spec(starts_at=before - timedelta(days=1)), before).field == "startsAt"
