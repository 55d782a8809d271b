"""Analytics numbers against hand-computed values on a fixed data set.

The data set (program time zone Asia/Shanghai, UTC+8; 30-day rolling expiry; 7-day
purchase pending window; one gift of ¥50 for 500 points, so the catalog-derived cost per
point is 10 fen) crosses month boundaries in that time zone:

January (local)
  Jan 10  register A, B, C; grant A 1000, grant B 300; C buys ¥200 → 200 points pending
  Jan 20  C's order is refunded in full → 200 taken back (reversed)
  Jan 20  partner P accrues 50 to B (event e1); Jan 25 accrues 40 (event e2)
February (local)
  Feb 1 01:30 local = Jan 31 17:30 UTC: A redeems the gift twice (500 + 500)
  Feb 2   P reverses e2 → 40 reversed;  Feb 3  P burns 30 of B's points
  Feb 5   A cancels the second redemption → 500 return to A's January lot
  Feb 10  expiry: A's lot 500, B's grant lot 270 (the burn took 30 of it); Feb 20: B's e1 lot 50
March (local)
  Mar 5   register D;  Mar 10  grant A 200, grant B 100;  Mar 12  A deducts 100 at checkout (held, then
          posted: spent)
  Mar 31 23:00 local (15:00 UTC): D buys ¥300 → 300 points pending at the month's end
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.core.auth import Role
from gateway.domain.partner_commands import OperationType, PartnerCommand
from gateway.features.expiry import expire_points
from gateway.services import Services
from gateway.store.analytics import DAILY, SHAPES, shape_stages
from tests.conftest import GraphQLClient, token
from tests.support.catalog_helpers import CANCEL, create_gift, redeem
from tests.support.partner_helpers import SETUP, add_partner
from tests.support.points_helpers import DEDUCT, UPDATE_PROGRAM, grant, purchase, refund, register

POINTS = """
query($from: Date!, $to: Date!) {
  pointsAnalytics(from: $from, to: $to) {
    months { month issued redeemed expired reversed returned adjusted issuedGrowth redeemedGrowth expiredGrowth
             liabilityPoints availablePoints liabilityFen expectedCostFen actualCostFen }
    totals { issued redeemed expired reversed returned adjusted }
    liability { availablePoints pendingPoints points costPerPointFen costPerPointMilliFen costPerPointSource amountFen }
    health { redemptionRate advice lowThresholdPercent highThresholdPercent }
    cost { expectedFen actualFen months { month expectedFen actualFen } }
    issuedBySource { source points }
    redeemedByChannel { channel points }
    breakage { rate cohorts { month issued expired redeemed reversed outstanding closed } }
  }
}"""
MEMBERS = """
query($from: Date!, $to: Date!) {
  memberAnalytics(from: $from, to: $to) {
    byTier { tier { code name } members }
    months { month newMembers activeMembers }
    rfm { segment members }
  }
}"""
TOP = """query($from: Date!, $to: Date!) {
  topGifts(from: $from, to: $to, first: 5) { gift { id name } redemptions points } }"""
PARTNERS = """
query($from: Date!, $to: Date!) {
  partnerAnalytics(from: $from, to: $to) {
    partner { id name } accrued burned convertedIn convertedOut converted fees fundedByPartner owedToPartner
    netPoints fundedByPartnerFen owedToPartnerFen netFen
  }
}"""
Q1 = {"from": "2026-01-01", "to": "2026-03-31"}


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC)


async def partner_op(services: Services, command: PartnerCommand) -> None:
    await services.partner_operations.apply("p", command)


@pytest.fixture
async def dataset(gql: GraphQLClient, admin: str, services: Services, clock: Any) -> dict[str, Any]:
    clock.set(at("2026-01-10T04:00:00"))
    await gql.ok(UPDATE_PROGRAM, {"input": {"expiry": {"mode": "ROLLING", "days": 30}}}, token=admin)
    gift = await create_gift(gql, admin, name="Tea set", costPrice=5_000, points=500, stock=10)
    for member_id in ("A", "B", "C"):
        await register(gql, admin, member_id)
    await services.db.members.update_one({"_id": "A"}, {"$set": {"tier": "SENIOR"}})
    await add_partner(services, "p")
    await services.partner_links.link(SETUP, "B", "p", "pb")
    await grant(gql, admin, "A", 1000, "g-a1")
    await grant(gql, admin, "B", 300, "g-b1")
    await purchase(gql, admin, "C", "o1", 20_000)

    clock.set(at("2026-01-20T04:00:00"))
    await refund(gql, admin, "C", "o1", 20_000, "r-o1")
    await partner_op(services, PartnerCommand(OperationType.ACCRUE, "e1", "pb", points=50))
    clock.set(at("2026-01-25T04:00:00"))
    await partner_op(services, PartnerCommand(OperationType.ACCRUE, "e2", "pb", points=40))

    clock.set(at("2026-01-31T17:30:00"))  # Feb 1, 01:30 in Shanghai
    member_a = token(Role.MEMBER, "A")
    first = await redeem(gql, member_a, "A", gift["id"], "red-1")
    second = await redeem(gql, member_a, "A", gift["id"], "red-2")
    assert "errors" not in first and "errors" not in second, (first, second)

    clock.set(at("2026-02-02T04:00:00"))
    await partner_op(services, PartnerCommand(OperationType.REVERSE, "e3", original_event_id="e2"))
    clock.set(at("2026-02-03T04:00:00"))
    await partner_op(services, PartnerCommand(OperationType.BURN, "e4", "pb", points=30))
    clock.set(at("2026-02-05T04:00:00"))
    await gql.ok(CANCEL, {"id": second["data"]["redeemGift"]["id"]}, token=member_a)
    clock.set(at("2026-02-10T04:00:00"))
    await expire_points(services.db, services.ledger)
    clock.set(at("2026-02-20T04:00:00"))
    await expire_points(services.db, services.ledger)

    clock.set(at("2026-03-05T04:00:00"))
    await register(gql, admin, "D")
    clock.set(at("2026-03-10T04:00:00"))
    await grant(gql, admin, "A", 200, "g-a2")
    await grant(gql, admin, "B", 100, "g-b2")
    clock.set(at("2026-03-12T04:00:00"))
    deduct = {"memberId": "A", "orderId": "o-ded", "orderAmount": 10_000, "points": 100, "idempotencyKey": "d1"}
    await gql.ok(DEDUCT, {"input": deduct}, token=admin)
    await post_checkout_hold(services, "A", "o-ded")
    clock.set(at("2026-03-31T15:00:00"))  # Mar 31, 23:00 in Shanghai
    await purchase(gql, admin, "D", "o2", 30_000)

    clock.set(at("2026-04-02T04:00:00"))
    return {"gift": gift}


async def post_checkout_hold(services: Services, member_id: str, order_id: str) -> None:
    """The checkout completes: its held points are spent. (recordPurchase does this too, with the
    order's own points and spend, which this hand-computed scenario leaves out.)"""
    from gateway.ledger import EntryKind, Memo, Source
    from gateway.store import deductions

    async def work(tx: Any) -> dict[str, Any]:
        deduction = await deductions.held_for_order(tx.db, member_id, order_id, session=tx.session)
        memo = Memo(EntryKind.DEDUCTION, f"Deduction at checkout on {order_id}", Source("ORDER", order_id))
        entry = await tx.post_hold(deduction["holdId"], memo)
        await deductions.settle(tx.db, deduction, "POSTED", {"entryId": entry["_id"]}, session=tx.session)
        return {}

    await services.ledger.transact(work)


async def test_points_analytics_match_the_hand_computed_values(
    gql: GraphQLClient, dataset: dict[str, Any], admin: str
) -> None:
    dashboard = token(Role.DASHBOARD, "wall")
    report = (await gql.ok(POINTS, Q1, token=dashboard))["pointsAnalytics"]
    jan, feb, mar = report["months"]
    assert jan == {
        "month": "2026-01", "issued": 1590, "redeemed": 0, "expired": 0, "reversed": 200, "returned": 0,
        "adjusted": 0, "issuedGrowth": None, "redeemedGrowth": None, "expiredGrowth": None,
        "liabilityPoints": 1390, "availablePoints": 1390, "liabilityFen": 13_900, "expectedCostFen": 13_900,
        "actualCostFen": 0,
    }  # fmt: skip
    assert feb == {
        "month": "2026-02", "issued": 0, "redeemed": 530, "expired": 820, "reversed": 40, "returned": 500,
        "adjusted": 0, "issuedGrowth": -1.0, "redeemedGrowth": None, "expiredGrowth": None,
        "liabilityPoints": 0, "availablePoints": 0, "liabilityFen": 0, "expectedCostFen": 0, "actualCostFen": 5_300,
    }  # fmt: skip
    assert mar["issued"] == 600 and mar["redeemed"] == 100 and mar["expired"] == 0 and mar["reversed"] == 0
    assert mar["issuedGrowth"] is None
    assert mar["redeemedGrowth"] == pytest.approx((100 - 530) / 530)
    assert mar["expiredGrowth"] == -1.0
    assert (mar["liabilityPoints"], mar["availablePoints"]) == (500, 200)
    assert report["totals"] == {
        "issued": 2190, "redeemed": 630, "expired": 820, "reversed": 240, "returned": 500, "adjusted": 0
    }  # fmt: skip
    assert report["liability"] == {
        "availablePoints": 200, "pendingPoints": 300, "points": 500, "costPerPointFen": 10.0,
        "costPerPointMilliFen": 10_000, "costPerPointSource": "CATALOG", "amountFen": 5_000,
    }  # fmt: skip
    assert report["health"]["redemptionRate"] == pytest.approx(630 / 2190)
    assert report["health"]["advice"] == "MORE_REDEMPTION_CHANNELS"
    assert report["cost"]["expectedFen"] == 2_000 and report["cost"]["actualFen"] == 6_300
    assert [m["actualFen"] for m in report["cost"]["months"]] == [0, 5_300, 1_000]
    assert report["issuedBySource"] == [
        {"source": "GRANT", "points": 1600},
        {"source": "PURCHASE", "points": 500},
        {"source": "PARTNER_ACCRUE", "points": 90},
    ]
    assert report["redeemedByChannel"] == [
        {"channel": "GIFTS", "points": 500},
        {"channel": "CHECKOUT_DEDUCTION", "points": 100},
        {"channel": "PARTNER_BURN", "points": 30},
    ]
    assert report["breakage"]["cohorts"] == [
        {"month": "2026-01", "issued": 1590, "expired": 820, "redeemed": 530, "reversed": 240, "outstanding": 0,
         "closed": True},
        {"month": "2026-03", "issued": 600, "expired": 0, "redeemed": 100, "reversed": 0, "outstanding": 500,
         "closed": False},
    ]  # fmt: skip
    assert report["breakage"]["rate"] == pytest.approx(820 / 1350)


async def test_a_single_month_grows_against_the_month_before_and_opens_with_its_balance(
    gql: GraphQLClient, dataset: dict[str, Any], admin: str
) -> None:
    report = (await gql.ok(POINTS, {"from": "2026-02-01", "to": "2026-02-28"}, token=admin))["pointsAnalytics"]
    (feb,) = report["months"]
    assert feb["issuedGrowth"] == -1.0 and feb["redeemed"] == 530 and feb["liabilityPoints"] == 0
    # From mid-January: January's days 15..31 (daily rollups), February and March (monthly ones).
    partial = (await gql.ok(POINTS, {"from": "2026-01-15", "to": "2026-03-31"}, token=admin))["pointsAnalytics"]
    jan, feb, _ = partial["months"]
    assert (jan["issued"], jan["reversed"], jan["liabilityPoints"]) == (90, 200, 1390)
    assert (feb["redeemed"], feb["expired"]) == (530, 820)
    assert partial["totals"]["issued"] == 690
    march = (await gql.ok(POINTS, {"from": "2026-03-01", "to": "2026-03-31"}, token=admin))["pointsAnalytics"]
    assert march["months"][0]["liabilityPoints"] == 500
    assert march["liability"]["pendingPoints"] == 300


async def test_member_gift_and_partner_analytics(gql: GraphQLClient, dataset: dict[str, Any], admin: str) -> None:
    dashboard = token(Role.DASHBOARD, "wall")
    members = (await gql.ok(MEMBERS, Q1, token=dashboard))["memberAnalytics"]
    assert [(t["tier"]["code"], t["members"]) for t in members["byTier"]] == [
        ("MEMBER", 3),
        ("SENIOR", 1),
        ("VIP", 0),
        ("SUPREME_VIP", 0),
    ]
    assert members["months"] == [
        {"month": "2026-01", "newMembers": 3, "activeMembers": 3},
        {"month": "2026-02", "newMembers": 0, "activeMembers": 2},
        {"month": "2026-03", "newMembers": 1, "activeMembers": 3},
    ]
    assert members["rfm"] == [{"segment": "LOST", "members": 1}, {"segment": "NEEDS_ATTENTION", "members": 1}]

    top = (await gql.ok(TOP, Q1, token=dashboard))["topGifts"]
    assert top == [{"gift": {"id": dataset["gift"]["id"], "name": "Tea set"}, "redemptions": 1, "points": 500}]

    (partner,) = (await gql.ok(PARTNERS, Q1, token=dashboard))["partnerAnalytics"]
    assert partner == {
        "partner": {"id": "p", "name": "P"}, "accrued": 50, "burned": 30, "convertedIn": 0, "convertedOut": 0,
        "converted": 0, "fees": 0, "fundedByPartner": 50, "owedToPartner": 30, "netPoints": -20,
        "fundedByPartnerFen": 50, "owedToPartnerFen": 30, "netFen": -20,
    }  # fmt: skip


async def test_months_follow_the_program_time_zone(gql: GraphQLClient, dataset: dict[str, Any], admin: str) -> None:
    shanghai = (await gql.ok(POINTS, Q1, token=admin))["pointsAnalytics"]["months"]
    assert [m["redeemed"] for m in shanghai] == [0, 530, 100]
    await gql.ok(UPDATE_PROGRAM, {"input": {"timezone": "UTC"}}, token=admin)
    utc = (await gql.ok(POINTS, Q1, token=admin))["pointsAnalytics"]["months"]
    # In UTC both redemptions (Jan 31, 17:30) fall in January; the cancellation stays in February.
    assert [m["redeemed"] for m in utc] == [1000, -470, 100]
    assert [m["liabilityPoints"] for m in utc] == [390, 0, 500]


async def test_rollups_and_the_live_tail_agree_with_balances(
    gql: GraphQLClient, dataset: dict[str, Any], admin: str, services: Services, clock: Any
) -> None:
    """A query seals the past days; entries after that come from the live tail, and a later
    query (after midnight) moves them into rollups without counting anything twice."""
    await gql.ok(POINTS, Q1, token=admin)
    await grant(gql, admin, "B", 7, "g-b3")  # April 2: live tail
    q2 = {"from": "2026-01-01", "to": "2026-04-30"}
    live = (await gql.ok(POINTS, q2, token=admin))["pointsAnalytics"]
    # Another replica is half-way through sealing later days: its rollups of April 2 are
    # written but its seal mark is not. The tail still covers that day, counted once.
    store = services.analytics.store
    for shape in SHAPES:
        await store._run("ledger", [*shape_stages(shape, "Asia/Shanghai"), {"$merge": {"into": DAILY}}])
    assert (await gql.ok(POINTS, q2, token=admin))["pointsAnalytics"] == live
    clock.set(at("2026-04-05T04:00:00"))
    sealed = (await gql.ok(POINTS, q2, token=admin))["pointsAnalytics"]
    assert live["months"][3]["issued"] == sealed["months"][3]["issued"] == 7
    pending = {"$add": ["$balances.pending", {"$ifNull": ["$balances.held", 0]}]}
    pipeline = [{"$group": {"_id": None, "a": {"$sum": "$balances.available"}, "p": {"$sum": pending}}}]
    held = await (await services.db.members.aggregate(pipeline)).to_list()
    assert sealed["liability"]["availablePoints"] + sealed["liability"]["pendingPoints"] == held[0]["a"] + held[0]["p"]
    totals = sealed["totals"]
    identity = totals["issued"] - totals["reversed"] - totals["redeemed"] - totals["adjusted"] - totals["expired"]
    assert identity == sealed["liability"]["points"]


@pytest.mark.parametrize("role", [Role.MEMBER, Role.PARTNER])
async def test_members_and_partners_may_not_read_analytics(gql: GraphQLClient, services: Services, role: Role) -> None:
    auth: dict[str, str]
    if role is Role.PARTNER:
        auth = {"api_key": (await add_partner(services, "nosy")).api_key}
    else:
        auth = {"token": token(Role.MEMBER, "A")}
    for query in (POINTS, MEMBERS, TOP, PARTNERS):
        assert await gql.error_code(query, Q1, **auth) == "FORBIDDEN"
    assert await gql.error_code(POINTS, Q1) == "UNAUTHENTICATED"


async def test_bad_ranges_are_refused(gql: GraphQLClient, admin: str) -> None:
    assert await gql.error_code(POINTS, {"from": "2026-03-01", "to": "2026-02-01"}, token=admin) == "BAD_USER_INPUT"
    assert await gql.error_code(POINTS, {"from": "2000-01-01", "to": "2026-02-01"}, token=admin) == "BAD_USER_INPUT"
    bad_top = TOP.replace("first: 5", "first: 0")
    assert await gql.error_code(bad_top, Q1, token=admin) == "BAD_USER_INPUT"


SETTINGS = """mutation($i: AnalyticsSettingsInput!) {
  updateAnalyticsSettings(input: $i) { costPerPointMilliFen adviceLowPercent adviceHighPercent timezone } }"""


async def test_settings_change_the_cost_per_point_and_the_advice(
    gql: GraphQLClient, dataset: dict[str, Any], admin: str
) -> None:
    changed = await gql.ok(SETTINGS, {"i": {"costPerPointMilliFen": 2_500, "adviceLowPercent": 20}}, token=admin)
    assert changed["updateAnalyticsSettings"] == {
        "costPerPointMilliFen": 2_500, "adviceLowPercent": 20, "adviceHighPercent": 100, "timezone": "Asia/Shanghai"
    }  # fmt: skip
    report = (await gql.ok(POINTS, Q1, token=admin))["pointsAnalytics"]
    assert report["liability"]["amountFen"] == 1_250 and report["liability"]["costPerPointSource"] == "SETTING"
    assert report["health"]["advice"] == "BALANCED"
    invalid = {"i": {"adviceLowPercent": 120}}
    assert await gql.error_code(SETTINGS, invalid, token=admin) == "BAD_USER_INPUT"
    dashboard = token(Role.DASHBOARD, "wall")
    assert await gql.error_code(SETTINGS, {"i": {"adviceLowPercent": 10}}, token=dashboard) == "FORBIDDEN"
    await gql.ok(SETTINGS, {"i": {"costPerPointMilliFen": None}}, token=admin)
    report = (await gql.ok(POINTS, Q1, token=admin))["pointsAnalytics"]
    assert report["liability"]["costPerPointSource"] == "CATALOG"


async def test_points_held_at_checkout_stay_in_the_liability_until_posted(
    gql: GraphQLClient, admin: str, services: Services, clock: Any
) -> None:
    """A two-phase deduction's hold moves points from available to held: still owed, not redeemed."""
    clock.set(at("2026-05-10T04:00:00"))
    await register(gql, admin, "H")
    await grant(gql, admin, "H", 1000, "g-h1")
    deduct = {"memberId": "H", "orderId": "o-h", "orderAmount": 10_000, "points": 200, "idempotencyKey": "dh"}
    await gql.ok(DEDUCT, {"input": deduct}, token=admin)
    may = {"from": "2026-05-01", "to": "2026-05-31"}
    report = (await gql.ok(POINTS, may, token=admin))["pointsAnalytics"]
    assert report["liability"]["availablePoints"] == 800 and report["liability"]["pendingPoints"] == 200
    assert report["liability"]["points"] == 1000 and report["totals"]["redeemed"] == 0
    await post_checkout_hold(services, "H", "o-h")
    report = (await gql.ok(POINTS, may, token=admin))["pointsAnalytics"]
    assert report["liability"]["points"] == 800 and report["totals"]["redeemed"] == 200


async def test_partner_money_keeps_the_rate_each_operation_was_made_at(
    gql: GraphQLClient, dataset: dict[str, Any], admin: str, services: Services
) -> None:
    """Like partner statements: a later rate change does not re-price operations already made."""
    before = (await gql.ok(PARTNERS, Q1, token=admin))["partnerAnalytics"]
    await services.db["partners"].update_one({"_id": "p"}, {"$set": {"settlementMilliFenPerPoint": 5_000}})
    after = (await gql.ok(PARTNERS, Q1, token=admin))["partnerAnalytics"]
    assert after == before
    assert (after[0]["fundedByPartnerFen"], after[0]["owedToPartnerFen"]) == (50, 30)
