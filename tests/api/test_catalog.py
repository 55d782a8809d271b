"""The points mall through GraphQL on the real MongoDB: gifts, windows, limits, tiers, orders."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from gateway.core.auth import Role
from gateway.features.audit import audit_all
from tests.conftest import token
from tests.support.catalog_helpers import (
    CANCEL,
    ELIGIBILITY,
    FULFILL,
    GIFT,
    available,
    create_gift,
    member_with,
    redeem,
)

HOUR = timedelta(hours=1)
COSTS = "query($id: ID!) { gift(id: $id) { costPrice costPerPoint } }"
UPDATE = (
    "mutation($id: ID!, $input: UpdateGiftInput!) "
    "{ updateGift(id: $id, input: $input) { name points: listPrice { points } } }"
)


def code(body):
    assert body.get("errors"), body
    return body["errors"][0]["extensions"]["code"]


def iso(instant):
    return instant.isoformat()


async def test_admin_manages_gifts_and_bad_input_is_refused(gql, admin, db):
    gift = await create_gift(gql, admin, description="A phone", imageUrl="https://img.example/p6.png")
    assert gift["status"] == "ON_SALE" and gift["minTier"] == "SENIOR"
    assert gift["price"] == {"points": 1500, "cash": 0, "onOffer": False}
    member = token(Role.MEMBER, "m1")
    assert (
        await gql.error_code(
            'mutation { createGift(input: {name: "x", category: "c", costPrice: 1, points: 1}) { id } }', token=member
        )
        == "FORBIDDEN"
    )
    bad = [
        {"name": ""},
        {"points": 0},
        {"costPrice": -1},
        {"cash": 400_000},
        {"stock": -1},
        {"minTier": "GOLD"},
        {"imageUrl": "ftp://x"},
        {"limits": {"perMember": 2}},
        {"limits": {"perOrder": 0}},
        {"startsAt": "2026-03-05T00:00:00Z", "endsAt": "2026-03-04T00:00:00Z"},
    ]
    for fields in bad:
        body = await gql(
            "mutation($input: CreateGiftInput!) { createGift(input: $input) { id } }",
            {"input": {"name": "n", "category": "c", "costPrice": 320_000, "points": 10, **fields}},
            token=admin,
        )
        assert code(body) == "BAD_USER_INPUT", fields
    assert await db["gifts"].count_documents({}) == 1
    updated = await gql.ok(UPDATE, {"id": gift["id"], "input": {"name": "iPhone 6s", "points": 1600}}, token=admin)
    assert updated["updateGift"] == {"name": "iPhone 6s", "points": {"points": 1600}}
    assert code(await gql(UPDATE, {"id": gift["id"], "input": {"name": None}}, token=admin)) == "BAD_USER_INPUT"
    assert code(await gql(UPDATE, {"id": "nope", "input": {"name": "x"}}, token=admin)) == "GIFT_NOT_FOUND"
    unlisted = await gql.ok("mutation($id: ID!) { unlistGift(id: $id) { status } }", {"id": gift["id"]}, token=admin)
    assert unlisted["unlistGift"]["status"] == "UNLISTED"
    assert await gql.error_code(GIFT, {"id": gift["id"]}) == "GIFT_NOT_FOUND"
    listed = await gql.ok("mutation($id: ID!) { listGift(id: $id) { status } }", {"id": gift["id"]}, token=admin)
    assert listed["listGift"]["status"] == "ON_SALE"


async def test_seed_004_cost_per_point_is_for_admins_only(gql, admin):
    pure = await create_gift(gql, admin)
    mixed = await create_gift(gql, admin, cash=30_000)
    assert (await gql.ok(COSTS, {"id": pure["id"]}, token=admin))["gift"] == {
        "costPrice": 320_000,
        "costPerPoint": "2.133",
    }
    assert (await gql.ok(COSTS, {"id": mixed["id"]}, token=admin))["gift"]["costPerPoint"] == "1.933"
    assert await gql.error_code(COSTS, {"id": pure["id"]}, token=token(Role.MEMBER, "m1")) == "FORBIDDEN"
    assert await gql.error_code("query($id: ID!) { gift(id: $id) { costPerPoint } }", {"id": pure["id"]}) in {
        "UNAUTHENTICATED",
        "FORBIDDEN",
    }


async def test_stock_ten_two_hundred_concurrent_redeemers_sell_exactly_ten(gql, admin, services, db):
    gift = await create_gift(gql, admin, stock=10, points=100)
    members = [f"m{i:02d}" for i in range(50)]
    tokens = {m: await member_with(services, m, points=1000) for m in members}
    attempts = [(members[i % 50], f"k{i}") for i in range(200)]
    results = await asyncio.gather(*(redeem(gql, tokens[m], m, gift["id"], key) for m, key in attempts))
    sold = [r for r in results if "errors" not in r]
    assert len(sold) == 10
    assert {code(r) for r in results if "errors" in r} == {"OUT_OF_STOCK"}
    assert await db["redemptions"].count_documents({"giftId": gift["id"]}) == 10
    assert await db.ledger.count_documents({"kind": "REDEMPTION"}) == 10
    stored = await db["gifts"].find_one({"_id": gift["id"]})
    assert stored["stock"] == 0 and stored["redeemed"] == 10
    assert sum([1000 - await available(services, m) for m in members]) == 10 * 100
    assert (await gql.ok(GIFT, {"id": gift["id"]}))["gift"]["status"] == "SOLD_OUT"
    offered = await gql.ok("{ gifts { edges { node { id } } } }")
    assert offered["gifts"]["edges"] == []
    assert await audit_all(db) == []
    restocked = await gql.ok(
        "mutation($id: ID!) { restockGift(id: $id, quantity: 3) { stock status } }", {"id": gift["id"]}, token=admin
    )
    assert restocked["restockGift"] == {"stock": 3, "status": "ON_SALE"}
    assert len((await gql.ok("{ gifts { edges { node { id } } } }"))["gifts"]["edges"]) == 1


async def test_scheduled_listing_switches_at_the_exact_instant(gql, admin, services, clock):
    start, end = clock.now() + HOUR, clock.now() + 2 * HOUR
    gift = await create_gift(gql, admin)
    scheduled = await gql.ok(
        "mutation($id: ID!, $s: DateTime!, $e: DateTime) { scheduleGift(id: $id, startsAt: $s, endsAt: $e) "
        "{ status startsAt endsAt } }",
        {"id": gift["id"], "s": iso(start), "e": iso(end)},
        token=admin,
    )
    assert scheduled["scheduleGift"]["status"] == "SCHEDULED"
    alice = await member_with(services, "alice", points=10_000)
    assert (await gql.ok(ELIGIBILITY, {"id": gift["id"], "memberId": "alice"}, token=alice))["gift"]["eligibility"] == {
        "canRedeem": False,
        "reason": "NOT_LISTED",
    }
    assert code(await redeem(gql, alice, "alice", gift["id"], "early")) == "NOT_LISTED"
    assert (await gql.ok("{ gifts { edges { node { id } } } }"))["gifts"]["edges"] == []
    coming = await gql.ok("{ gifts(offeredOnly: false) { edges { node { id status } } } }")
    assert coming["gifts"]["edges"] == [{"node": {"id": gift["id"], "status": "SCHEDULED"}}]

    clock.set(start - timedelta(milliseconds=1))
    assert code(await redeem(gql, alice, "alice", gift["id"], "almost")) == "NOT_LISTED"
    clock.set(start)
    assert "errors" not in await redeem(gql, alice, "alice", gift["id"], "on-time")
    assert len((await gql.ok("{ gifts { edges { node { id } } } }"))["gifts"]["edges"]) == 1
    clock.set(end)
    assert (await gql.ok(GIFT, {"id": gift["id"]}))["gift"]["status"] == "ENDED"
    assert code(await redeem(gql, alice, "alice", gift["id"], "late")) == "NOT_LISTED"


async def test_flash_offer_price_is_shown_and_charged_inside_its_window(gql, admin, services, clock, db):
    gift = await create_gift(gql, admin, points=1500)
    start, end = clock.now() + HOUR, clock.now() + 2 * HOUR
    offer = await gql.ok(
        "mutation($id: ID!, $input: GiftOfferInput!) { setGiftOffer(id: $id, input: $input) "
        "{ price { points onOffer } offer { points active } } }",
        {"id": gift["id"], "input": {"points": 800, "startsAt": iso(start), "endsAt": iso(end)}},
        token=admin,
    )
    assert offer["setGiftOffer"] == {
        "price": {"points": 1500, "onOffer": False},
        "offer": {"points": 800, "active": False},
    }
    bob = await member_with(services, "bob", points=5000)
    clock.set(start)
    assert (await gql.ok(GIFT, {"id": gift["id"]}))["gift"]["price"] == {"points": 800, "cash": 0, "onOffer": True}
    order = (await redeem(gql, bob, "bob", gift["id"], "flash"))["data"]["redeemGift"]
    assert order["points"] == 800 and order["onOffer"] is True
    clock.set(end)
    assert (await gql.ok(GIFT, {"id": gift["id"]}))["gift"]["price"]["points"] == 1500
    order = (await redeem(gql, bob, "bob", gift["id"], "regular"))["data"]["redeemGift"]
    assert order["points"] == 1500 and order["onOffer"] is False
    assert await available(services, "bob") == 5000 - 800 - 1500
    cleared = await gql.ok(
        "mutation($id: ID!) { clearGiftOffer(id: $id) { offer { points } } }", {"id": gift["id"]}, token=admin
    )
    assert cleared["clearGiftOffer"]["offer"] is None
    assert await audit_all(db) == []


async def test_per_member_window_and_per_order_limits(gql, admin, services, clock):
    gift = await create_gift(gql, admin, points=100, limits={"perMember": 2, "period": "DAY", "perOrder": 1})
    carol = await member_with(services, "carol", points=10_000)
    assert code(await redeem(gql, carol, "carol", gift["id"], "two", quantity=2)) == "LIMIT_REACHED"
    first = (await redeem(gql, carol, "carol", gift["id"], "a"))["data"]["redeemGift"]
    assert "errors" not in await redeem(gql, carol, "carol", gift["id"], "b")
    assert code(await redeem(gql, carol, "carol", gift["id"], "c")) == "LIMIT_REACHED"
    eligibility = await gql.ok(ELIGIBILITY, {"id": gift["id"], "memberId": "carol"}, token=carol)
    assert eligibility["gift"]["eligibility"] == {"canRedeem": False, "reason": "LIMIT_REACHED"}
    # a cancelled order no longer counts against the window
    await gql.ok(CANCEL, {"id": first["id"]}, token=carol)
    assert "errors" not in await redeem(gql, carol, "carol", gift["id"], "d")
    assert code(await redeem(gql, carol, "carol", gift["id"], "e")) == "LIMIT_REACHED"
    # the day is a calendar day in Asia/Shanghai: 12:00 local now, so 12 hours later is tomorrow
    clock.advance(12 * HOUR - timedelta(seconds=1))
    assert code(await redeem(gql, carol, "carol", gift["id"], "f")) == "LIMIT_REACHED"
    clock.advance(timedelta(seconds=1))
    assert "errors" not in await redeem(gql, carol, "carol", gift["id"], "g")


async def test_tier_permission(gql, admin, services, db):
    senior_gift = await create_gift(gql, admin, points=100)
    vip_gift = await create_gift(gql, admin, points=100, minTier="VIP")
    plain = await member_with(services, "plain", points=10_000, tier="MEMBER")
    senior = await member_with(services, "senior", points=10_000, tier="SENIOR")
    assert code(await redeem(gql, plain, "plain", senior_gift["id"], "x")) == "TIER_TOO_LOW"
    eligibility = await gql.ok(ELIGIBILITY, {"id": senior_gift["id"], "memberId": "plain"}, token=plain)
    assert eligibility["gift"]["eligibility"] == {"canRedeem": False, "reason": "TIER_TOO_LOW"}
    assert "errors" not in await redeem(gql, senior, "senior", senior_gift["id"], "y")
    assert code(await redeem(gql, senior, "senior", vip_gift["id"], "z")) == "TIER_TOO_LOW"
    assert await available(services, "plain") == 10_000
    assert await db["redemptions"].count_documents({}) == 1


async def test_cancellation_restores_points_with_expiry_and_stock(gql, admin, services, db):
    gift = await create_gift(gql, admin, points=300, stock=2)
    dave = await member_with(services, "dave", points=1000)
    lot_before = await db.lots.find_one({"memberId": "dave"})
    order = (await redeem(gql, dave, "dave", gift["id"], "k", quantity=2))["data"]["redeemGift"]
    assert order["points"] == 600 and order["status"] == "PLACED"
    assert (await gql.ok(GIFT, {"id": gift["id"]}))["gift"]["status"] == "SOLD_OUT"
    assert await available(services, "dave") == 400
    eve = token(Role.MEMBER, "eve")
    assert await gql.error_code(CANCEL, {"id": order["id"]}, token=eve) == "REDEMPTION_NOT_FOUND"  # as if missing
    cancelled = await gql.ok(CANCEL, {"id": order["id"]}, token=dave)
    assert cancelled["cancelRedemption"] == {
        "id": order["id"],
        "status": "CANCELLED",
        "cancelReason": "changed my mind",
    }
    assert await available(services, "dave") == 1000
    lot_after = await db.lots.find_one({"_id": lot_before["_id"]})
    assert lot_after["remaining"] == 1000 and lot_after["expiresAt"] == lot_before["expiresAt"]
    assert (await gql.ok(GIFT, {"id": gift["id"]}))["gift"]["stock"] == 2
    assert (await gql.ok(GIFT, {"id": gift["id"]}))["gift"]["status"] == "ON_SALE"
    assert await gql.error_code(CANCEL, {"id": order["id"]}, token=dave) == "INVALID_STATE"
    assert await gql.error_code(FULFILL, {"id": order["id"]}, token=admin) == "INVALID_STATE"
    kinds = [e["kind"] async for e in db.ledger.find({"memberId": "dave"}).sort("seq", 1)]
    assert kinds == ["GRANT", "REDEMPTION", "REDEMPTION_CANCEL"]

    shipped = (await redeem(gql, dave, "dave", gift["id"], "k2"))["data"]["redeemGift"]
    assert await gql.error_code(FULFILL, {"id": shipped["id"]}, token=dave) == "FORBIDDEN"
    fulfilled = await gql.ok(FULFILL, {"id": shipped["id"]}, token=admin)
    assert fulfilled["fulfillRedemption"] == {
        "id": shipped["id"],
        "status": "FULFILLED",
        "carrier": "SF",
        "trackingNumber": "SF123",
    }
    assert await gql.error_code(CANCEL, {"id": shipped["id"]}, token=dave) == "INVALID_STATE"
    assert await gql.error_code(CANCEL, {"id": "red_missing"}, token=admin) == "REDEMPTION_NOT_FOUND"
    assert (await gql.ok(CANCEL, {"id": shipped["id"]}, token=admin))["cancelRedemption"]["status"] == "CANCELLED"
    assert await available(services, "dave") == 1000
    assert await audit_all(db) == []


async def test_redeem_gift_is_idempotent(gql, admin, services, db):
    gift = await create_gift(gql, admin, points=100, stock=5)
    erin = await member_with(services, "erin", points=1000)
    first = (await redeem(gql, erin, "erin", gift["id"], "once"))["data"]["redeemGift"]
    again = (await redeem(gql, erin, "erin", gift["id"], "once"))["data"]["redeemGift"]
    assert again["id"] == first["id"]
    assert code(await redeem(gql, erin, "erin", gift["id"], "once", quantity=2)) == "IDEMPOTENCY_CONFLICT"
    racing = await asyncio.gather(*(redeem(gql, erin, "erin", gift["id"], "race") for _ in range(10)))
    assert len({r["data"]["redeemGift"]["id"] for r in racing}) == 1
    assert await db["redemptions"].count_documents({}) == 2
    assert await available(services, "erin") == 800
    assert (await db["gifts"].find_one({"_id": gift["id"]}))["stock"] == 3
    assert await audit_all(db) == []


async def test_points_plus_cash_insufficient_points_and_access(gql, admin, services):
    gift = await create_gift(gql, admin, points=1500, cash=30_000)
    fay = await member_with(services, "fay", points=1499)
    assert code(await redeem(gql, fay, "fay", gift["id"], "a", cash=30_000)) == "INSUFFICIENT_POINTS"
    eligibility = await gql.ok(ELIGIBILITY, {"id": gift["id"], "memberId": "fay"}, token=fay)
    assert eligibility["gift"]["eligibility"] == {"canRedeem": False, "reason": "INSUFFICIENT_POINTS"}
    await member_with(services, "gus", points=2000)
    assert code(await redeem(gql, fay, "gus", gift["id"], "b", cash=30_000)) == "FORBIDDEN"
    assert code(await redeem(gql, admin, "gus", gift["id"], "c")) == "BAD_USER_INPUT"
    order = (await redeem(gql, admin, "gus", gift["id"], "d", cash=30_000))["data"]["redeemGift"]
    assert order["cashPaid"] == 0 and order["points"] == 1500 and order["status"] == "AWAITING_PAYMENT"
    assert code(await redeem(gql, admin, "gus", "no-such-gift", "e")) == "GIFT_NOT_FOUND"
    assert await gql.error_code(ELIGIBILITY, {"id": gift["id"], "memberId": "gus"}, token=fay) == "FORBIDDEN"
    read = "query($id: ID!) { redemption(id: $id) { id giftName gift { name } } }"
    assert await gql.error_code(read, {"id": order["id"]}, token=fay) == "REDEMPTION_NOT_FOUND"
    gus = token(Role.MEMBER, "gus")
    assert (await gql.ok(read, {"id": order["id"]}, token=gus))["redemption"]["gift"]["name"] == "iPhone 6"


async def test_member_redemptions_page_newest_first(gql, admin, services):
    gift = await create_gift(gql, admin, points=10)
    hal = await member_with(services, "hal", points=1000)
    ids = [(await redeem(gql, hal, "hal", gift["id"], f"k{i}"))["data"]["redeemGift"]["id"] for i in range(5)]
    query = """query($after: String) { member(id: "hal") { redemptions(first: 2, after: $after) {
      edges { node { id status } } pageInfo { hasNextPage endCursor } } } }"""
    seen, after = [], None
    while True:
        page = (await gql.ok(query, {"after": after}, token=hal))["member"]["redemptions"]
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == list(reversed(ids))


async def test_delete_only_never_redeemed_gifts(gql, admin, services, db):
    spare = await create_gift(gql, admin)
    used = await create_gift(gql, admin, points=10)
    ivy = await member_with(services, "ivy", points=100)
    await redeem(gql, ivy, "ivy", used["id"], "k")
    delete = "mutation($id: ID!) { deleteGift(id: $id) }"
    assert (await gql.ok(delete, {"id": spare["id"]}, token=admin))["deleteGift"] is True
    assert await gql.error_code(delete, {"id": spare["id"]}, token=admin) == "GIFT_NOT_FOUND"
    assert await gql.error_code(delete, {"id": used["id"]}, token=admin) == "GIFT_HAS_REDEMPTIONS"
    assert await db["gifts"].count_documents({}) == 1


async def test_demo_catalog_fills_the_mall_once(gql, admin, services, db):
    from gateway.demo.seed import seed_demo

    await seed_demo(services)
    await seed_demo(services)
    assert await db["gifts"].count_documents({}) == 9
    everything = await gql.ok(
        "{ gifts(first: 50, offeredOnly: false) { edges { node { id status price { points cash onOffer } } } } }"
    )
    nodes = {e["node"]["id"]: e["node"] for e in everything["gifts"]["edges"]}
    assert nodes["demo-gift-plush"]["status"] == "SOLD_OUT"
    assert nodes["demo-gift-mooncakes"]["status"] == "SCHEDULED"
    assert nodes["demo-gift-thermos"]["price"] == {"points": 400, "cash": 0, "onOffer": True}
    assert nodes["demo-gift-powerbank"]["price"]["cash"] == 2_000
    costs = await gql.ok('{ gift(id: "demo-gift-iphone-cash") { costPerPoint } }', token=admin)
    assert costs["gift"]["costPerPoint"] == "1.933"


async def test_storefront_pages_in_creation_order_with_category_filter(gql, admin, clock):
    for gift_id, category in [("z-1", "food"), ("a-2", "toys"), ("m-3", "food"), ("b-4", "food"), ("c-5", "food")]:
        await create_gift(gql, admin, id=gift_id, category=category)
        clock.advance(timedelta(seconds=1))
    query = """query($after: String, $category: String) { gifts(first: 2, after: $after, category: $category) {
      edges { node { id } } pageInfo { hasNextPage endCursor } } }"""
    seen, after = [], None
    while True:
        page = (await gql.ok(query, {"after": after, "category": "food"}))["gifts"]
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ["z-1", "m-3", "b-4", "c-5"]
    assert await gql.error_code(query, {"after": "bm90LWEtY3Vyc29y"}) == "BAD_USER_INPUT"
    assert await gql.error_code("{ gifts(includeUnlisted: true) { edges { node { id } } } }") == "UNAUTHENTICATED"


async def test_concurrent_orders_of_one_member_respect_the_window_limit(gql, admin, services, db):
    gift = await create_gift(gql, admin, points=10, stock=100, limits={"perMember": 3, "period": "WEEK"})
    jo = await member_with(services, "jo", points=1000)
    results = await asyncio.gather(*(redeem(gql, jo, "jo", gift["id"], f"k{i}") for i in range(12)))
    assert sum("errors" not in r for r in results) == 3
    assert {code(r) for r in results if "errors" in r} == {"LIMIT_REACHED"}
    assert await db["redemptions"].count_documents({"memberId": "jo"}) == 3
    assert await available(services, "jo") == 970
    assert await audit_all(db) == []
