"""Campaigns through GraphQL: line items, category/SKU boosts in a time window, budgets under a race,
refunds by line, and campaign points in analytics by source (docs/campaigns.md)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from gateway.core.auth import Role
from gateway.core.clock import FrozenClock
from gateway.features.admin_audit import AuditQuery
from gateway.services import Services
from tests.conftest import START, GraphQLClient, token
from tests.support.points_helpers import member, register

MARKETING = token(Role.MARKETING, "mkt-1")
SUPPORT = token(Role.SUPPORT, "cs-1")

CAMPAIGN_FIELDS = """
  id name status startsAt endsAt budgetPoints memberCapPoints spentPoints remainingPoints version
  boosts { multiplierPercent categories skus } cancelledAt cancelReason
  stats { pointsGiven pointsTakenBack members orders }
"""
CREATE = f"mutation($i: CampaignInput!) {{ createCampaign(input: $i) {{ {CAMPAIGN_FIELDS} }} }}"
UPDATE = f"""mutation($id: ID!, $i: CampaignInput!, $v: Int) {{
  updateCampaign(id: $id, input: $i, expectedVersion: $v) {{ {CAMPAIGN_FIELDS} }} }}"""
CANCEL = f"mutation($id: ID!, $r: String!) {{ cancelCampaign(id: $id, reason: $r) {{ {CAMPAIGN_FIELDS} }} }}"
GET = f"query($id: ID!) {{ campaign(id: $id) {{ {CAMPAIGN_FIELDS} }} }}"
LIST = """query($after: String) {
  campaigns(first: 2, after: $after) { edges { node { name } } pageInfo { hasNextPage endCursor } } }"""
BUY = """
mutation($input: RecordPurchaseInput!) {
  recordPurchase(input: $input) {
    points bonusPoints capped campaigns { campaignId name points }
    entries { kind points source { type id } }
  }
}
"""
REFUND = """
mutation($input: RefundPurchaseInput!) {
  refundPurchase(input: $input) { points bonusPoints shortfall member { points { available pending lifetimeEarned } } }
}
"""


def campaign_input(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Double 11 electronics",
        "startsAt": START.isoformat(),
        "endsAt": (START + timedelta(days=7)).isoformat(),
        "boosts": [{"multiplierPercent": 300, "categories": ["ELECTRONICS"]}],
        **overrides,
    }


async def create(gql: GraphQLClient, **overrides: Any) -> dict[str, Any]:
    return (await gql.ok(CREATE, {"i": campaign_input(**overrides)}, token=MARKETING))["createCampaign"]


LINES = [
    {"sku": "TV-55", "category": "ELECTRONICS", "amount": 10_000},
    {"sku": "RICE-5KG", "category": "FOOD", "amount": 5_000},
]


async def buy(gql: GraphQLClient, admin: str, member_id: str, order_id: str, amount: int, **extra: Any) -> Any:
    payload = {"memberId": member_id, "orderId": order_id, "amount": amount, "idempotencyKey": f"k-{order_id}"}
    return (await gql.ok(BUY, {"input": {**payload, **extra}}, token=admin))["recordPurchase"]


async def refund(gql: GraphQLClient, admin: str, member_id: str, order_id: str, amount: int, key: str, **extra: Any):
    payload = {"memberId": member_id, "orderId": order_id, "amount": amount, "idempotencyKey": key, **extra}
    return (await gql.ok(REFUND, {"input": payload}, token=admin))["refundPurchase"]


async def test_line_items_must_add_up_and_name_each_sku_once(gql: GraphQLClient, admin: str):
    await register(gql, admin, "ann")
    base = {"memberId": "ann", "orderId": "o-1", "amount": 15_000, "idempotencyKey": "k"}
    short = [{**LINES[0]}, {**LINES[1], "amount": 4_999}]
    assert await gql.error_code(BUY, {"input": {**base, "lineItems": short}}, token=admin) == "BAD_USER_INPUT"
    twice = [{**LINES[0], "amount": 7_500}, {**LINES[0], "amount": 7_500}]
    assert await gql.error_code(BUY, {"input": {**base, "lineItems": twice}}, token=admin) == "BAD_USER_INPUT"
    bad_code = [{"sku": "tv 55", "amount": 15_000}]
    assert await gql.error_code(BUY, {"input": {**base, "lineItems": bad_code}}, token=admin) == "BAD_USER_INPUT"
    # without a campaign, line items change nothing in what the order earns
    result = await buy(gql, admin, "ann", "o-1", 15_000, lineItems=LINES)
    assert (result["points"], result["bonusPoints"], result["campaigns"]) == (150, 0, [])


async def test_a_category_boost_gives_its_bonus_only_inside_its_window(
    gql: GraphQLClient, admin: str, clock: FrozenClock
):
    campaign = await create(gql)
    assert campaign["status"] == "ACTIVE" and campaign["remainingPoints"] is None
    await register(gql, admin, "ann")
    # paid an hour before the start: regular points only
    early = (START - timedelta(hours=1)).isoformat()
    assert (await buy(gql, admin, "ann", "early", 15_000, lineItems=LINES, paidAt=early))["bonusPoints"] == 0
    # inside: the TV line earns 300% (bonus 2 × 100), the rice line earns the regular rate
    result = await buy(gql, admin, "ann", "in", 15_000, lineItems=LINES)
    assert (result["points"], result["bonusPoints"]) == (350, 200)
    assert result["campaigns"] == [{"campaignId": campaign["id"], "name": "Double 11 electronics", "points": 200}]
    bonus = [e for e in result["entries"] if e["kind"] == "CAMPAIGN"]
    assert bonus == [{"kind": "CAMPAIGN", "points": 200, "source": {"type": "CAMPAIGN", "id": campaign["id"]}}]
    # an order without line items matches no category boost
    assert (await buy(gql, admin, "ann", "plain", 15_000))["bonusPoints"] == 0
    # the end is exclusive
    clock.set(START + timedelta(days=7))
    assert (await buy(gql, admin, "ann", "late", 15_000, lineItems=LINES))["bonusPoints"] == 0
    got = (await gql.ok(GET, {"id": campaign["id"]}, token=MARKETING))["campaign"]
    assert got["status"] == "ENDED"
    assert got["stats"] == {"pointsGiven": 200, "pointsTakenBack": 0, "members": 1, "orders": 1}


async def test_the_best_boost_wins_per_line_and_a_sku_boost_beats_a_smaller_category_one(
    gql: GraphQLClient, admin: str
):
    await create(gql, name="Electronics ×2", boosts=[{"multiplierPercent": 200, "categories": ["ELECTRONICS"]}])
    tv = await create(gql, name="TV ×5", boosts=[{"multiplierPercent": 500, "skus": ["TV-55"]}])
    whole = await create(gql, name="Everything ×1.5", boosts=[{"multiplierPercent": 150}])
    result = await buy(gql, admin, "bo", "o-1", 15_000, lineItems=LINES)
    # TV line: ×5 → bonus 400; rice line: only "everything" matches → bonus 25
    assert sorted((c["name"], c["points"]) for c in result["campaigns"]) == [("Everything ×1.5", 25), ("TV ×5", 400)]
    assert result["points"] == 150 + 425
    # a whole-order boost applies to an order without line items too
    plain = await buy(gql, admin, "bo", "o-2", 10_000)
    assert plain["campaigns"] == [{"campaignId": whole["id"], "name": "Everything ×1.5", "points": 50}]
    assert tv["id"] != whole["id"]


async def test_refunds_by_line_take_back_what_each_line_earned(gql: GraphQLClient, admin: str):
    await create(gql)
    await register(gql, admin, "cy")
    await buy(gql, admin, "cy", "o-1", 15_000, lineItems=LINES)
    # returning the TV takes back its 100 regular points and its 200 bonus
    tv = await refund(gql, admin, "cy", "o-1", 10_000, "r-1", lines=[{"sku": "TV-55", "amount": 10_000}])
    assert (tv["points"], tv["bonusPoints"], tv["shortfall"]) == (300, 200, 0)
    assert tv["member"]["points"]["pending"] == 50
    # the TV line is fully refunded: it cannot be refunded again
    again = {
        "memberId": "cy",
        "orderId": "o-1",
        "amount": 1,
        "idempotencyKey": "r-2",
        "lines": [{"sku": "TV-55", "amount": 1}],
    }
    assert await gql.error_code(REFUND, {"input": again}, token=admin) == "BAD_USER_INPUT"
    unknown = {**again, "lines": [{"sku": "NOPE", "amount": 1}]}
    assert await gql.error_code(REFUND, {"input": unknown}, token=admin) == "BAD_USER_INPUT"
    mismatch = {**again, "amount": 2, "lines": [{"sku": "RICE-5KG", "amount": 1}]}
    assert await gql.error_code(REFUND, {"input": mismatch}, token=admin) == "BAD_USER_INPUT"
    # a refund that names no line is spread over what is left (only rice now)
    rest = await refund(gql, admin, "cy", "o-1", 5_000, "r-3")
    assert (rest["points"], rest["bonusPoints"]) == (50, 0)
    assert rest["member"]["points"] == {"available": 0, "pending": 0, "lifetimeEarned": 0}


async def test_partial_refunds_without_lines_add_up_to_exactly_what_the_order_earned(gql: GraphQLClient, admin: str):
    await create(gql, boosts=[{"multiplierPercent": 250, "categories": ["ELECTRONICS"]}])
    await register(gql, admin, "di")
    lines = [
        {"sku": "A", "category": "ELECTRONICS", "amount": 3_333},
        {"sku": "B", "category": "FOOD", "amount": 6_667},
    ]
    bought = await buy(gql, admin, "di", "o-1", 10_000, lineItems=lines)
    assert (bought["points"], bought["bonusPoints"]) == (100 + 49, 49)
    taken = 0
    for i, amount in enumerate([1, 999, 3_001, 2_999, 3_000]):
        taken += (await refund(gql, admin, "di", "o-1", amount, f"r-{i}"))["points"]
    assert taken == bought["points"]
    assert (await member(gql, admin, "di"))["points"]["lifetimeEarned"] == 0


async def test_a_refund_without_line_items_still_takes_back_its_share(gql: GraphQLClient, admin: str):
    """The existing refund path: an order recorded without lines is one line."""
    await register(gql, admin, "ed")
    await buy(gql, admin, "ed", "o-1", 10_001)
    first = await refund(gql, admin, "ed", "o-1", 3_000, "r-1")
    second = await refund(gql, admin, "ed", "o-1", 7_001, "r-2")
    assert (first["points"], second["points"]) == (100 * 3_000 // 10_001, 100 - 100 * 3_000 // 10_001)


async def test_the_budget_holds_under_a_race_of_purchases(gql: GraphQLClient, admin: str, services: Services):
    campaign = await create(gql, budgetPoints=1_000)
    members = [f"racer-{i}" for i in range(16)]

    async def one(member_id: str) -> dict[str, Any]:
        return await buy(gql, admin, member_id, f"o-{member_id}", 15_000, lineItems=LINES)

    results = await asyncio.gather(*(one(m) for m in members))
    bonuses = [r["bonusPoints"] for r in results]
    assert sum(bonuses) == 1_000  # 5 full bonuses of 200, never more
    assert sorted(bonuses, reverse=True)[:5] == [200] * 5 and all(b in (0, 200) for b in bonuses)
    assert all(r["points"] == 150 + r["bonusPoints"] for r in results)
    got = (await gql.ok(GET, {"id": campaign["id"]}, token=MARKETING))["campaign"]
    assert (got["status"], got["spentPoints"], got["remainingPoints"]) == ("EXHAUSTED", 1_000, 0)
    assert got["stats"]["pointsGiven"] == 1_000 and got["stats"]["members"] == 5
    # an exhausted campaign gives nothing more, even to a new order inside its window
    assert (await buy(gql, admin, "late", "o-late", 15_000, lineItems=LINES))["bonusPoints"] == 0
    # raising the budget reopens it
    raised = await gql.ok(UPDATE, {"id": campaign["id"], "i": campaign_input(budgetPoints=1_100)}, token=MARKETING)
    assert raised["updateCampaign"]["status"] == "ACTIVE"
    assert (await buy(gql, admin, "later", "o-later", 15_000, lineItems=LINES))["bonusPoints"] == 100


async def test_a_budget_gives_its_last_points_partially_and_a_member_cap_limits_one_member(
    gql: GraphQLClient, admin: str
):
    await create(gql, budgetPoints=250, memberCapPoints=300)
    assert (await buy(gql, admin, "fay", "o-1", 15_000, lineItems=LINES))["bonusPoints"] == 200
    assert (await buy(gql, admin, "fay", "o-2", 15_000, lineItems=LINES))["bonusPoints"] == 50  # budget left
    capped = await create(gql, name="Capped", memberCapPoints=300)
    assert (await buy(gql, admin, "gus", "o-3", 15_000, lineItems=LINES))["campaigns"] == [
        {"campaignId": capped["id"], "name": "Capped", "points": 200}
    ]
    assert (await buy(gql, admin, "gus", "o-4", 15_000, lineItems=LINES))["bonusPoints"] == 100  # cap left


async def test_campaign_changes_follow_the_rules_and_are_audited(
    gql: GraphQLClient, admin: str, clock: FrozenClock, services: Services
):
    later = START + timedelta(days=1)
    campaign = await create(gql, startsAt=later.isoformat(), endsAt=(later + timedelta(days=3)).isoformat())
    assert campaign["status"] == "SCHEDULED"
    cid = campaign["id"]
    # support may not manage campaigns; nothing is written
    assert await gql.error_code(CREATE, {"i": campaign_input()}, token=SUPPORT) == "FORBIDDEN"
    assert await gql.error_code(CANCEL, {"id": cid, "r": "x"}, token=SUPPORT) == "FORBIDDEN"
    # invalid campaigns
    for bad in (
        {"endsAt": START.isoformat()},
        {"boosts": [{"multiplierPercent": 100}]},
        {"boosts": []},
        {"budgetPoints": 0},
        {"startsAt": (START - timedelta(days=1)).isoformat()},
    ):
        assert await gql.error_code(CREATE, {"i": campaign_input(**bad)}, token=MARKETING) == "BAD_USER_INPUT"
    # before its start, anything may change; a stale version is refused
    moved = campaign_input(
        startsAt=later.isoformat(),
        endsAt=(later + timedelta(days=3)).isoformat(),
        boosts=[{"multiplierPercent": 200, "skus": ["TV-55"]}],
    )
    updated = (await gql.ok(UPDATE, {"id": cid, "i": moved, "v": 1}, token=MARKETING))["updateCampaign"]
    assert updated["version"] == 2 and updated["boosts"][0]["skus"] == ["TV-55"]
    assert await gql.error_code(UPDATE, {"id": cid, "i": moved, "v": 1}, token=MARKETING) == "CONFLICT"
    # once started: boosts stay, the end may move
    clock.set(later + timedelta(hours=1))
    other_boost = {**moved, "boosts": [{"multiplierPercent": 900}]}
    assert await gql.error_code(UPDATE, {"id": cid, "i": other_boost}, token=MARKETING) == "BAD_USER_INPUT"
    longer = {**moved, "endsAt": (later + timedelta(days=5)).isoformat()}
    assert (await gql.ok(UPDATE, {"id": cid, "i": longer}, token=MARKETING))["updateCampaign"]["status"] == "ACTIVE"
    assert (await buy(gql, admin, "hal", "o-1", 15_000, lineItems=LINES))["bonusPoints"] == 100
    # cancelled: no more bonus, and it cannot be cancelled twice
    cancelled = (await gql.ok(CANCEL, {"id": cid, "r": "stock ran out"}, token=MARKETING))["cancelCampaign"]
    assert cancelled["status"] == "CANCELLED" and cancelled["cancelReason"] == "stock ran out"
    assert await gql.error_code(CANCEL, {"id": cid, "r": "again"}, token=MARKETING) == "INVALID_STATE"
    assert (await buy(gql, admin, "hal", "o-2", 15_000, lineItems=LINES))["bonusPoints"] == 0
    assert await gql.error_code(GET, {"id": "nope"}, token=MARKETING) == "NOT_FOUND"
    entries = await services.admin_audit.search(AuditQuery(target_kind="campaign", target_id=cid), limit=10)
    events = [e["details"]["event"] for e in sorted(entries, key=lambda e: e["seq"])]
    assert events == ["created", "updated", "updated", "cancelled"]
    page = (await gql.ok(LIST, {}, token=MARKETING))["campaigns"]
    assert [e["node"]["name"] for e in page["edges"]] == ["Double 11 electronics"]


async def test_campaign_points_show_in_analytics_by_source(gql: GraphQLClient, admin: str):
    await create(gql)
    await buy(gql, admin, "ivy", "o-1", 15_000, lineItems=LINES)
    await refund(gql, admin, "ivy", "o-1", 10_000, "r-1", lines=[{"sku": "TV-55", "amount": 10_000}])
    query = """query($from: Date!, $to: Date!) { pointsAnalytics(from: $from, to: $to) {
      issuedBySource { source points } totals { issued reversed } } }"""
    day = START.date().isoformat()
    report = (await gql.ok(query, {"from": day, "to": day}, token=admin))["pointsAnalytics"]
    assert report["issuedBySource"] == [{"source": "CAMPAIGN", "points": 200}, {"source": "PURCHASE", "points": 150}]
    assert report["totals"] == {"issued": 350, "reversed": 300}
