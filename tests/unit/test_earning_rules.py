"""The pure earning rules, tested directly (no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain import calendar
from gateway.domain import earning as rules
from gateway.domain.program import DEFAULT_PROGRAM, DeductionRules, EarnCap, EarningRules, Period, StreakBonus

EARNING = DEFAULT_PROGRAM.earning
MEMBER, SENIOR, VIP, SUPREME = DEFAULT_PROGRAM.tiers


def test_purchase_points_rate_and_unit():
    assert rules.purchase_points(38_050, EARNING, MEMBER).points == 380
    per_ten = EarningRules(purchase_points=1, purchase_unit_fen=1_000)
    assert rules.purchase_points(38_050, per_ten, MEMBER).points == 38
    assert rules.purchase_points(99, EARNING, MEMBER).points == 0


def test_multipliers_tier_paid_and_best_occasion():
    assert rules.purchase_points(10_000, EARNING, VIP).points == 120
    assert rules.purchase_points(10_000, EARNING, SUPREME, paid_member=True).points == 225
    both = rules.purchase_points(10_000, EARNING, MEMBER, member_day=True, birthday=True)
    assert both.points == 200 and [n for n, _ in both.multiplier_percents] == ["TIER", "MEMBER_DAY"]
    richer_birthday = EarningRules(birthday_multiplier_percent=300)
    assert rules.purchase_points(10_000, richer_birthday, MEMBER, member_day=True, birthday=True).points == 300


@given(st.integers(0, 10**9), st.booleans(), st.booleans(), st.booleans(), st.sampled_from(DEFAULT_PROGRAM.tiers))
def test_purchase_points_are_never_negative_and_grow_with_spend(amount, member_day, birthday, paid, tier):
    flags = {"member_day": member_day, "birthday": birthday, "paid_member": paid}
    points = rules.purchase_points(amount, EARNING, tier, **flags).points
    assert points >= amount // 100 >= 0 if tier.earn_multiplier_percent >= 100 else points >= 0
    assert rules.purchase_points(amount + 100, EARNING, tier, **flags).points >= points


def test_member_day_and_birthday():
    assert rules.is_member_day(date(2026, 3, 8), EARNING)
    assert not rules.is_member_day(date(2026, 3, 9), EARNING)
    assert rules.is_member_day(date(2026, 3, 11), EarningRules(member_day_weekdays=(2,)))  # a Wednesday
    assert rules.is_birthday(date(2026, 7, 21), date(1988, 7, 21))
    assert rules.is_birthday(date(2026, 2, 28), date(2000, 2, 29))
    assert rules.is_birthday(date(2028, 2, 29), date(2000, 2, 29))
    assert not rules.is_birthday(date(2028, 2, 28), date(2000, 2, 29))
    assert not rules.is_birthday(date(2026, 1, 1), None)


def test_local_date_uses_the_program_timezone():
    late = datetime(2026, 3, 1, 16, 30, tzinfo=UTC)  # 00:30 on 2 March in Shanghai
    assert calendar.local_date(late, "Asia/Shanghai") == date(2026, 3, 2)
    assert calendar.local_date(late, "UTC") == date(2026, 3, 1)


def test_caps():
    cap = EarnCap(daily=50, monthly=120)
    assert rules.capped(30, cap, earned_today=0, earned_this_month=0) == 30
    assert rules.capped(30, cap, earned_today=40, earned_this_month=40) == 10
    assert rules.capped(30, cap, earned_today=0, earned_this_month=110) == 10
    assert rules.capped(30, cap, earned_today=60, earned_this_month=60) == 0
    assert rules.capped(30, None, earned_today=999, earned_this_month=999) == 30


def test_check_in_streaks():
    today = date(2026, 3, 10)
    assert rules.check_in(None, 0, today, EARNING) == rules.CheckIn(streak=1, points=5, bonus=0)
    assert rules.check_in(date(2026, 3, 9), 6, today, EARNING) == rules.CheckIn(streak=7, points=25, bonus=20)
    assert rules.check_in(date(2026, 3, 8), 6, today, EARNING).streak == 1
    assert rules.check_in(today, 3, today, EARNING) is None
    both = EarningRules(check_in_streak_bonuses=(StreakBonus(days=2, bonus=1), StreakBonus(days=3, bonus=10)))
    assert rules.check_in(date(2026, 3, 9), 5, today, both).bonus == 11


def test_periods():
    day = date(2026, 3, 11)
    assert calendar.period_bounds(day, Period.WEEK) == (date(2026, 3, 9), date(2026, 3, 16))
    assert calendar.period_bounds(date(2026, 12, 5), Period.MONTH) == (date(2026, 12, 1), date(2027, 1, 1))
    assert calendar.period_bounds(day, Period.YEAR) == (date(2026, 1, 1), date(2027, 1, 1))
    assert calendar.period_key(day, Period.WEEK) == calendar.period_key(date(2026, 3, 15), Period.WEEK)
    assert calendar.period_key(day, Period.WEEK) != calendar.period_key(date(2026, 3, 16), Period.WEEK)


@given(st.integers(1, 10**6), st.integers(1, 10**7), st.lists(st.integers(1, 10**6), max_size=8))
def test_partial_refunds_add_up_to_what_the_order_earned(earned, paid, parts):
    refunded, taken = 0, 0
    for part in parts:
        part = min(part, paid - refunded)
        if part == 0:
            break
        taken += rules.proportional_take_back(earned, paid, refunded, part)
        refunded += part
    assert 0 <= taken <= earned
    taken += rules.proportional_take_back(earned, paid, refunded, paid - refunded)
    assert taken == earned


def test_refund_beyond_paid_is_refused():
    with pytest.raises(ValueError):
        rules.proportional_take_back(100, 1_000, 900, 200)


def test_deduction():
    default = DeductionRules()
    assert rules.deduction(2_500, 10_000, default) == rules.Deduction(points=2_500, value_fen=2_500, max_points=5_000)
    with pytest.raises(ValueError, match="at most 5000"):
        rules.deduction(5_001, 10_000, default)
    ten_per_yuan = DeductionRules(points_per_yuan=10, max_percent_of_order=100)
    assert rules.deduction(30, 1_000, ten_per_yuan).value_fen == 300
    three = DeductionRules(points_per_yuan=300, max_percent_of_order=100)
    with pytest.raises(ValueError, match="whole fen"):
        rules.deduction(100, 10_000, three)
    with pytest.raises(ValueError):
        rules.deduction(0, 10_000, default)


def test_growth():
    assert rules.purchase_growth(38_099, DEFAULT_PROGRAM.growth) == 380


def test_referral_stands_while_a_qualifying_purchase_is_kept():
    assert rules.referral_stands(10_000, 0, 100)
    assert not rules.referral_stands(100, 100, 100)  # ¥1 bought and refunded: the farming case
    assert not rules.referral_stands(10_000, 10_000, 100)
    assert rules.referral_stands(10_000, 9_900, 100)  # ¥1 kept: as good as an honest minimum purchase
    assert not rules.referral_stands(10_000, 9_901, 100)
    assert rules.referral_stands(50, 0, 100) and not rules.referral_stands(50, 1, 100)  # smaller first purchase
    assert rules.referral_stands(3, 2, 0)  # no threshold: any kept fen
    with pytest.raises(ValueError):
        rules.referral_stands(100, 101, 100)
