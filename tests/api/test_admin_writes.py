"""Admin writes: tier codes are stable ids, and concurrent edits never lose a change (issue 11, items 7-8)."""

from __future__ import annotations

import asyncio

from gateway.features.audit import audit_all
from tests.support.catalog_helpers import create_gift, member_with, redeem
from tests.support.points_helpers import member, purchase

PROGRAM = "query { program { version name pendingDays tiers { code name } earning { purchasePoints checkInPoints "
PROGRAM += "referralPoints birthdayMultiplierPercent memberDayMultiplierPercent paidMemberMultiplierPercent } "
PROGRAM += "growth { perYuan checkIn behaviour } deduction { pointsPerYuan maxPercentOfOrder } } }"

UPDATE_TIERS = """
mutation($tiers: [TierInput!]!, $replacements: [TierReplacementInput!], $v: Int) {
  updateTiers(tiers: $tiers, replacements: $replacements, expectedVersion: $v) { version tiers { code name } }
}"""

DEFAULT_TIERS = [
    {"code": "MEMBER", "name": "Member", "threshold": 100, "pricePercent": 98},
    {"code": "SENIOR", "name": "Senior", "threshold": 38_000, "pricePercent": 95, "canRedeemGifts": True},
    {"code": "VIP", "name": "VIP", "threshold": 200_000, "pricePercent": 90, "canRedeemGifts": True},
    {"code": "SUPREME_VIP", "name": "Supreme", "threshold": 500_000, "pricePercent": 86, "canRedeemGifts": True},
]
WITHOUT_VIP = [t for t in DEFAULT_TIERS if t["code"] != "VIP"]
GIFT_TIER = "query($id: ID!) { gift(id: $id) { minTier } }"


async def test_renaming_a_tier_keeps_its_code_for_members_and_gifts(gql, admin):
    assert (await purchase(gql, admin, "vip", "o-1", 200_000))["tierAfter"] == "VIP"
    gift = await create_gift(gql, admin, minTier="VIP")
    renamed = [dict(t, name="Gold 金卡") if t["code"] == "VIP" else t for t in DEFAULT_TIERS]
    await gql.ok(UPDATE_TIERS, {"tiers": renamed}, token=admin)
    seen = await gql.ok('query { member(id: "vip") { tier { code name } } }', token=admin)
    assert seen["member"]["tier"] == {"code": "VIP", "name": "Gold 金卡"}
    assert (await gql.ok(GIFT_TIER, {"id": gift["id"]}, token=admin))["gift"]["minTier"] == "VIP"


async def test_removing_a_tier_in_use_is_refused_without_a_replacement(gql, admin, db):
    await purchase(gql, admin, "vip", "o-1", 200_000)
    before = (await gql.ok(PROGRAM, token=admin))["program"]
    body = await gql(UPDATE_TIERS, {"tiers": WITHOUT_VIP}, token=admin)
    error = body["errors"][0]["extensions"]
    assert error["code"] == "TIER_IN_USE" and (error["members"], error["gifts"]) == (1, 0)
    after = (await gql.ok(PROGRAM, token=admin))["program"]
    assert after == before  # nothing saved
    gift = await create_gift(gql, admin, minTier="SUPREME_VIP")
    no_top = [t for t in DEFAULT_TIERS if t["code"] != "SUPREME_VIP"]
    body = await gql(UPDATE_TIERS, {"tiers": no_top}, token=admin)
    assert body["errors"][0]["extensions"] == {"code": "TIER_IN_USE", "tier": "SUPREME_VIP", "members": 0, "gifts": 1}
    assert (await gql.ok(GIFT_TIER, {"id": gift["id"]}, token=admin))["gift"]["minTier"] == "SUPREME_VIP"


async def test_removing_a_tier_with_a_replacement_moves_members_and_gifts_together(gql, admin, db, services):
    await purchase(gql, admin, "vip", "o-1", 200_000)
    await purchase(gql, admin, "senior", "o-2", 40_000)
    gift = await create_gift(gql, admin, minTier="VIP", points=100)
    moved = await gql.ok(
        UPDATE_TIERS, {"tiers": WITHOUT_VIP, "replacements": [{"code": "VIP", "replacement": "SENIOR"}]}, token=admin
    )
    assert [t["code"] for t in moved["updateTiers"]["tiers"]] == ["MEMBER", "SENIOR", "SUPREME_VIP"]
    assert (await member(gql, admin, "vip"))["tier"]["code"] == "SENIOR"
    assert (await gql.ok(GIFT_TIER, {"id": gift["id"]}, token=admin))["gift"]["minTier"] == "SENIOR"
    change = await db["tier_changes"].find_one({"memberId": "vip", "fromTier": "VIP"})
    assert (change["toTier"], change["direction"]) == ("SENIOR", "DOWN")
    assert await db["tier_changes"].count_documents({"memberId": "senior", "fromTier": "SENIOR"}) == 0
    # The moved gift is redeemable by the tier that replaced its minimum.
    senior = await member_with(services, "s2", points=500, tier="SENIOR")
    placed = await redeem(gql, senior, "s2", gift["id"], "r-1")
    assert placed["data"]["redeemGift"]["status"] == "PLACED", placed
    assert await audit_all(db) == []


async def test_replacements_must_name_a_removed_tier_and_a_kept_one(gql, admin):
    await purchase(gql, admin, "vip", "o-1", 200_000)
    cases = [
        {"tiers": WITHOUT_VIP, "replacements": [{"code": "VIP", "replacement": "VIP"}]},
        {"tiers": WITHOUT_VIP, "replacements": [{"code": "VIP", "replacement": "NOPE"}]},
        {"tiers": DEFAULT_TIERS, "replacements": [{"code": "SENIOR", "replacement": "MEMBER"}]},
    ]
    for variables in cases:
        assert await gql.error_code(UPDATE_TIERS, variables, token=admin) == "BAD_USER_INPUT", variables
    assert (await member(gql, admin, "vip"))["tier"]["code"] == "VIP"
    # An unused tier goes without a replacement.
    no_top = [t for t in DEFAULT_TIERS if t["code"] != "SUPREME_VIP"]
    assert len((await gql.ok(UPDATE_TIERS, {"tiers": no_top}, token=admin))["updateTiers"]["tiers"]) == 3


EARNING = "mutation($i: EarningRulesInput!, $v: Int) { updateEarningRules(input: $i, expectedVersion: $v) { version } }"
SETTINGS = "mutation($i: ProgramSettingsInput!, $v: Int) { updateProgram(input: $i, expectedVersion: $v) { version } }"


async def test_concurrent_program_edits_all_land(gql, admin):
    """Twelve admins change twelve different settings at the same moment: none is lost."""
    edits = [
        (EARNING, {"purchasePoints": 3}),
        (EARNING, {"checkInPoints": 9}),
        (EARNING, {"referralPoints": 77}),
        (EARNING, {"birthdayMultiplierPercent": 300}),
        (EARNING, {"memberDayMultiplierPercent": 250}),
        (EARNING, {"paidMemberMultiplierPercent": 175}),
        (SETTINGS, {"name": "Renamed"}),
        (SETTINGS, {"pendingDays": 3}),
        (SETTINGS, {"growth": {"perYuan": 4}}),
        (SETTINGS, {"growth": {"checkIn": 6}}),
        (SETTINGS, {"deduction": {"pointsPerYuan": 40}}),
        (SETTINGS, {"deduction": {"maxPercentOfOrder": 30}}),
    ]
    version = (await gql.ok(PROGRAM, token=admin))["program"]["version"]
    results = await asyncio.gather(*(gql.ok(query, {"i": change}, token=admin) for query, change in edits))
    versions = sorted(next(iter(r.values()))["version"] for r in results)
    assert versions == list(range(version + 1, version + 1 + len(edits)))
    program = (await gql.ok(PROGRAM, token=admin))["program"]
    assert program["earning"] == {
        "purchasePoints": 3,
        "checkInPoints": 9,
        "referralPoints": 77,
        "birthdayMultiplierPercent": 300,
        "memberDayMultiplierPercent": 250,
        "paidMemberMultiplierPercent": 175,
    }
    assert (program["name"], program["pendingDays"]) == ("Renamed", 3)
    assert program["growth"] == {"perYuan": 4, "checkIn": 6, "behaviour": 5}
    assert program["deduction"] == {"pointsPerYuan": 40, "maxPercentOfOrder": 30}


async def test_an_edit_of_a_stale_program_version_is_refused(gql, admin):
    version = (await gql.ok(PROGRAM, token=admin))["program"]["version"]
    first = await gql.ok(EARNING, {"i": {"checkInPoints": 8}, "v": version}, token=admin)
    assert first["updateEarningRules"]["version"] == version + 1
    body = await gql(SETTINGS, {"i": {"pendingDays": 1}, "v": version}, token=admin)
    assert body["errors"][0]["extensions"] == {"code": "CONFLICT", "currentVersion": version + 1}
    tiers = await gql(UPDATE_TIERS, {"tiers": DEFAULT_TIERS, "v": version}, token=admin)
    assert tiers["errors"][0]["extensions"]["code"] == "CONFLICT"
    program = (await gql.ok(PROGRAM, token=admin))["program"]
    assert (program["pendingDays"], program["earning"]["checkInPoints"]) == (7, 8)
    assert program["tiers"][0]["name"] != "Member"  # the stale tier edit did not apply either


async def test_tier_edits_race_with_settings_edits_without_losing_either(gql, admin):
    renamed = [dict(t, name=f"{t['name']} v2") for t in DEFAULT_TIERS]
    await asyncio.gather(
        gql.ok(UPDATE_TIERS, {"tiers": renamed}, token=admin),
        *(gql.ok(EARNING, {"i": {"checkInPoints": n}}, token=admin) for n in range(1, 6)),
        gql.ok(SETTINGS, {"i": {"pendingDays": 2}}, token=admin),
    )
    program = (await gql.ok(PROGRAM, token=admin))["program"]
    assert [t["name"] for t in program["tiers"]] == [f"{t['name']} v2" for t in DEFAULT_TIERS]
    assert program["pendingDays"] == 2 and 1 <= program["earning"]["checkInPoints"] <= 5


UPDATE_GIFT = """
mutation($id: ID!, $i: UpdateGiftInput!, $v: Int) {
  updateGift(id: $id, input: $i, expectedVersion: $v) { version }
}"""
GIFT = "query($id: ID!) { gift(id: $id) { version name description category listPrice { points } minTier "
GIFT += "costPrice imageUrl listed startsAt limits { perOrder } } }"


async def test_concurrent_gift_edits_all_land(gql, admin):
    gift = await create_gift(gql, admin)
    edits = [
        {"name": "iPhone 6 Plus"},
        {"description": "A phone"},
        {"category": "electronics"},
        {"points": 1800},
        {"minTier": "VIP"},
        {"costPrice": 330_000},
        {"imageUrl": "https://img.example/p.png"},
        {"limits": {"perOrder": 2}},
    ]
    await asyncio.gather(
        *(gql.ok(UPDATE_GIFT, {"id": gift["id"], "i": change}, token=admin) for change in edits),
        gql.ok(
            'mutation($id: ID!) { scheduleGift(id: $id, startsAt: "2026-01-01T00:00:00Z") { id } }',
            {"id": gift["id"]},
            token=admin,
        ),
    )
    seen = (await gql.ok(GIFT, {"id": gift["id"]}, token=admin))["gift"]
    assert seen == {
        "version": 1 + len(edits) + 1,
        "name": "iPhone 6 Plus",
        "description": "A phone",
        "category": "electronics",
        "listPrice": {"points": 1800},
        "minTier": "VIP",
        "costPrice": 330_000,
        "imageUrl": "https://img.example/p.png",
        "listed": True,
        "startsAt": "2026-01-01T00:00:00+00:00",
        "limits": {"perOrder": 2},
    }


async def test_a_gift_edit_of_a_stale_version_is_refused(gql, admin):
    gift = await create_gift(gql, admin)
    version = (await gql.ok(GIFT, {"id": gift["id"]}, token=admin))["gift"]["version"]
    await gql.ok(UPDATE_GIFT, {"id": gift["id"], "i": {"points": 1600}, "v": version}, token=admin)
    body = await gql(UPDATE_GIFT, {"id": gift["id"], "i": {"points": 1700}, "v": version}, token=admin)
    assert body["errors"][0]["extensions"] == {"code": "CONFLICT", "currentVersion": version + 1}
    assert (await gql.ok(GIFT, {"id": gift["id"]}, token=admin))["gift"]["listPrice"]["points"] == 1600
    await gql.ok("mutation($id: ID!) { restockGift(id: $id, quantity: 5) { id } }", {"id": gift["id"]}, token=admin)
    again = await gql.ok(UPDATE_GIFT, {"id": gift["id"], "i": {"points": 1700}, "v": version + 1}, token=admin)
    assert again["updateGift"]["version"] == version + 2  # stock moves leave the version alone
