"""The points-mall rules as plain functions: prices, cost per point, windows, eligibility."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gateway.domain.calendar import Period, period_start
from gateway.domain.catalog import (
    Eligibility,
    GiftRules,
    Limits,
    Offer,
    Reason,
    Status,
    cost_per_point,
    default_min_tier,
    eligibility,
    price_at,
    status,
    tier_allows,
)
from gateway.domain.member_status import MemberStatus
from gateway.domain.program import DEFAULT_PROGRAM

NOW = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # Monday 12:00 in Asia/Shanghai
TIERS = DEFAULT_PROGRAM.tiers
HOUR = timedelta(hours=1)


def gift(**changes) -> GiftRules:
    base = {
        "points": 1500,
        "cash": 0,
        "cost_price": 320_000,
        "stock": 5,
        "listed": True,
        "list_from": None,
        "list_until": None,
        "min_tier": "SENIOR",
    }
    return GiftRules(**{**base, **changes})


def check(g: GiftRules, *, tier="SENIOR", points=10_000, used=0, quantity=1, now=NOW, account=MemberStatus.ACTIVE):
    return eligibility(
        g,
        member_tier=tier,
        available_points=points,
        used_in_window=used,
        quantity=quantity,
        now=now,
        tiers=TIERS,
        member_status=account,
    )


def test_an_account_that_may_not_spend_is_the_first_reason_on_every_gift():
    """A frozen member's storefront says MEMBER_FROZEN, not canRedeem, even for a gift that fails later rules."""
    for account in (MemberStatus.FROZEN, MemberStatus.CLOSED, MemberStatus.MERGED):
        for g in (gift(), gift(listed=False), gift(stock=0), gift(min_tier="DIAMOND")):
            assert check(g, account=account) == Eligibility(False, Reason(f"MEMBER_{account.value}"))
    assert check(gift()).can_redeem


def test_every_reason_has_a_redemption_message():
    from gateway.features.redemptions import REASON_MESSAGES

    assert set(REASON_MESSAGES) == set(Reason)


def test_seed_004_cost_per_point():
    assert cost_per_point(320_000, 0, 1500) == Decimal("2.133")
    assert cost_per_point(320_000, 30_000, 1500) == Decimal("1.933")
    assert str(cost_per_point(100, 0, 3)) == "0.333"
    assert str(cost_per_point(200, 0, 3)) == "0.667"


def test_offer_price_is_in_force_only_inside_its_window():
    g = gift(offer=Offer(points=900, starts_at=NOW + HOUR, ends_at=NOW + 2 * HOUR), cash=30_000)
    assert price_at(g, NOW).points == 1500
    assert price_at(g, NOW + HOUR).points == 900 and price_at(g, NOW + HOUR).on_offer
    assert price_at(g, NOW + HOUR).cash == 30_000
    assert price_at(g, NOW + 2 * HOUR - timedelta(microseconds=1)).points == 900
    assert price_at(g, NOW + 2 * HOUR).points == 1500


def test_status_follows_flag_window_and_stock():
    assert status(gift(), NOW) is Status.ON_SALE
    assert status(gift(listed=False), NOW) is Status.UNLISTED
    assert status(gift(list_from=NOW + HOUR), NOW) is Status.SCHEDULED
    assert status(gift(list_from=NOW + HOUR), NOW + HOUR) is Status.ON_SALE
    assert status(gift(list_until=NOW), NOW) is Status.ENDED
    assert status(gift(stock=0), NOW) is Status.SOLD_OUT


def test_limit_windows_are_calendar_periods_in_the_program_timezone():
    tz = "Asia/Shanghai"
    assert period_start(NOW, Period.DAY, tz) == datetime(2026, 3, 1, 16, tzinfo=UTC)
    assert period_start(NOW, Period.WEEK, tz) == datetime(2026, 3, 1, 16, tzinfo=UTC)
    assert period_start(NOW + timedelta(days=3), Period.WEEK, tz) == datetime(2026, 3, 1, 16, tzinfo=UTC)
    assert period_start(NOW, Period.MONTH, tz) == datetime(2026, 2, 28, 16, tzinfo=UTC)
    # 23:30 local on Monday is still Monday; 00:00 local Tuesday starts a new day
    assert period_start(NOW + timedelta(hours=11, minutes=30), Period.DAY, tz) == datetime(2026, 3, 1, 16, tzinfo=UTC)
    assert period_start(NOW + timedelta(hours=12), Period.DAY, tz) == datetime(2026, 3, 2, 16, tzinfo=UTC)


def test_tier_permission_defaults_to_the_lowest_tier_that_can_redeem():
    assert default_min_tier(TIERS) == "SENIOR"
    assert not tier_allows("MEMBER", "SENIOR", TIERS)
    assert not tier_allows("MEMBER", "MEMBER", TIERS)  # the program's permission still applies
    assert tier_allows("VIP", "SENIOR", TIERS)
    assert not tier_allows("SENIOR", "VIP", TIERS)
    assert not tier_allows("SENIOR", "NO_SUCH_TIER", TIERS)


def test_eligibility_reasons_in_order():
    assert check(gift()).can_redeem and check(gift()).reason is None
    assert check(gift(listed=False)).reason is Reason.NOT_LISTED
    assert check(gift(list_from=NOW + HOUR, stock=0)).reason is Reason.NOT_LISTED
    assert check(gift(stock=0), tier="MEMBER").reason is Reason.OUT_OF_STOCK
    assert check(gift(stock=1), quantity=2).reason is Reason.OUT_OF_STOCK
    assert check(gift(), tier="MEMBER", points=0).reason is Reason.TIER_TOO_LOW
    limited = gift(limits=Limits(per_member=2, period=Period.DAY, per_order=1))
    assert check(limited, used=1).can_redeem
    assert check(limited, used=2, points=0).reason is Reason.LIMIT_REACHED
    assert check(limited, quantity=2).reason is Reason.LIMIT_REACHED
    assert check(gift(), points=1499).reason is Reason.INSUFFICIENT_POINTS
    assert check(gift(), points=3000, quantity=2).can_redeem


def test_eligibility_charges_the_offer_price():
    g = gift(offer=Offer(points=1000, starts_at=NOW, ends_at=NOW + HOUR))
    assert check(g, points=1000).can_redeem
    assert check(g, points=1000, now=NOW + HOUR).reason is Reason.INSUFFICIENT_POINTS
