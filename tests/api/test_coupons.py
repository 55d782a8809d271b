"""Coupons in the mall through GraphQL: virtual gifts backed by code pools (issue 14 §2)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta

import bson

from gateway.core.auth import Role
from gateway.features.audit import audit_all
from gateway.workers.holds import sweep_expired_holds
from tests.conftest import token
from tests.support.catalog_helpers import ELIGIBILITY, GIFT, available, create_gift, member_with, redeem

DAY = timedelta(days=1)
POOL = """query($g: String!) { couponPool(giftId: $g) {
  giftId giftStock cancelWindowMinutes nextExpiry
  counts { total available assigned used expired void }
  batches { id kind added alreadyInPool duplicateInInput inAnotherPool counts { total available } } } }"""
IMPORT = """mutation($g: String!, $codes: [String!]!, $exp: DateTime, $batch: String) {
  importCouponCodes(giftId: $g, codes: $codes, expiresAt: $exp, batchId: $batch) {
    batchId added alreadyInPool duplicateInInput inAnotherPool } }"""
GENERATE = """mutation($g: String!, $n: Int!, $key: String!, $prefix: String!, $len: Int!, $exp: DateTime) {
  generateCouponCodes(giftId: $g, count: $n, idempotencyKey: $key, prefix: $prefix, length: $len, expiresAt: $exp)
  { batchId added replayed } }"""
ORDER = """query($id: ID!) { redemption(id: $id) { id status kind cancelUntil fulfilledAt
  coupons { code expiresAt status usedAt } } }"""
CANCEL = "mutation($id: ID!) { cancelRedemption(id: $id) { id status } }"
USED = """mutation($code: String!, $m: String!, $ref: String!) {
  markCouponUsed(code: $code, memberId: $m, reference: $ref) { giftId redemptionId reference } }"""
VOID = """mutation($g: String!, $codes: [String!]!) {
  voidCouponCodes(giftId: $g, codes: $codes, reason: "leaked on a forum") { voided notAvailable notFound } }"""


async def coupon_gift(gql, admin, **fields):
    values = {"name": "满100减10", "category": "coupons", "costPrice": 1000, "points": 100, "stock": 0, **fields}
    return await create_gift(gql, admin, kind="VIRTUAL", **values)


async def pool(gql, admin, gift_id):
    return (await gql.ok(POOL, {"g": gift_id}, token=admin))["couponPool"]


async def import_codes(gql, who, gift_id, codes, **extra):
    return (await gql.ok(IMPORT, {"g": gift_id, "codes": codes, **extra}, token=who))["importCouponCodes"]


async def order_codes(gql, who, order_id):
    return (await gql.ok(ORDER, {"id": order_id}, token=who))["redemption"]


async def test_a_virtual_gift_sells_codes_fulfilled_at_once_and_only_its_member_and_admins_see_them(
    gql, admin, services, db, caplog
):
    caplog.set_level(logging.DEBUG)
    gift = await coupon_gift(gql, admin)
    assert gift["stock"] == 0 and gift["status"] == "SOLD_OUT"
    marketing = token(Role.MARKETING, "mkt-1")
    added = await import_codes(gql, marketing, gift["id"], ["MJ-AAA1", "MJ-AAA2", "MJ-AAA3"])
    assert added["added"] == 3
    assert (await gql.ok(GIFT, {"id": gift["id"]}))["gift"]["stock"] == 3

    alice = await member_with(services, "alice", points=1000)
    placed = await redeem(gql, alice, "alice", gift["id"], "k1")
    assert placed["data"]["redeemGift"]["status"] == "FULFILLED"
    order_id = placed["data"]["redeemGift"]["id"]
    mine = await order_codes(gql, alice, order_id)
    assert mine["kind"] == "VIRTUAL" and mine["cancelUntil"] is not None
    (coupon,) = mine["coupons"]
    assert coupon["code"] in {"MJ-AAA1", "MJ-AAA2", "MJ-AAA3"} and coupon["status"] == "ISSUED"
    assert (await order_codes(gql, admin, order_id))["coupons"] == mine["coupons"]  # and again, the same
    # Nobody else: another member cannot see the order, the payments service and staff not the code.
    assert await gql.error_code(ORDER, {"id": order_id}, token=token(Role.MEMBER, "bob")) == "REDEMPTION_NOT_FOUND"
    for role in (Role.PAYMENTS, Role.MARKETING):
        body = await gql(ORDER, {"id": order_id}, token=token(role, "x"))
        assert body["errors"][0]["extensions"]["code"] in {"FORBIDDEN", "REDEMPTION_NOT_FOUND"}
        assert coupon["code"] not in str(body)
    assert (await gql.ok(GIFT, {"id": gift["id"]}))["gift"]["stock"] == 2
    status = await pool(gql, admin, gift["id"])
    assert status["counts"] == {"total": 3, "available": 2, "assigned": 1, "used": 0, "expired": 0, "void": 0}
    assert status["giftStock"] == 2
    assert await available(services, "alice") == 900

    # The code is stored sealed: no collection holds it in clear, and no log line carries it.
    for name in await db.db.list_collection_names():
        async for doc in db[name].find():
            assert coupon["code"].encode() not in bson.encode(doc), name
    assert coupon["code"] not in caplog.text
    assert await audit_all(db) == []
    actions = [e async for e in db["adminAudit"].find({"action": "coupon_pool.change"})]
    assert [(e["actor"], e["details"]["op"], e["details"]["added"]) for e in actions] == [("mkt-1", "import", 3)]


async def test_imports_are_idempotent_report_duplicates_and_refuse_bad_lines_whole(gql, admin):
    gift = await coupon_gift(gql, admin)
    other = await coupon_gift(gql, admin)
    first = await import_codes(gql, admin, gift["id"], ["A1", "B2", "A1", " C3 ", ""], batch="file-1")
    assert first == {"batchId": "file-1", "added": 3, "alreadyInPool": 0, "duplicateInInput": 1, "inAnotherPool": 0}
    again = await import_codes(gql, admin, gift["id"], ["A1", "B2", "C3", "D4"], batch="file-1")
    assert again["added"] == 1 and again["alreadyInPool"] == 3
    elsewhere = await import_codes(gql, admin, other["id"], ["A1", "Z9"])
    assert elsewhere["added"] == 1 and elsewhere["inAnotherPool"] == 1
    status = await pool(gql, admin, gift["id"])
    assert status["counts"]["available"] == 4 == status["giftStock"]
    assert [(b["id"], b["added"], b["alreadyInPool"], b["duplicateInInput"]) for b in status["batches"]] == [
        ("file-1", 4, 3, 1)
    ]
    bad = {"g": gift["id"], "codes": ["E5", "has space", "F6"]}
    assert await gql.error_code(IMPORT, bad, token=admin) == "BAD_USER_INPUT"
    past = {"g": gift["id"], "codes": ["E5"], "exp": "2020-01-01T00:00:00Z"}
    assert await gql.error_code(IMPORT, past, token=admin) == "BAD_USER_INPUT"
    physical = await create_gift(gql, admin)
    assert await gql.error_code(IMPORT, {"g": physical["id"], "codes": ["E5"]}, token=admin) == "NOT_A_VIRTUAL_GIFT"
    restock = "mutation($id: ID!) { restockGift(id: $id, quantity: 5) { stock } }"
    assert await gql.error_code(restock, {"id": gift["id"]}, token=admin) == "STOCK_FROM_CODE_POOL"
    create = "mutation($input: CreateGiftInput!) { createGift(input: $input) { id } }"
    stocked = {"name": "x", "category": "c", "costPrice": 1, "points": 1, "kind": "VIRTUAL", "stock": 5}
    assert await gql.error_code(create, {"input": stocked}, token=admin) == "BAD_USER_INPUT"
    assert await gql.error_code(IMPORT, {"g": gift["id"], "codes": ["E5"]}, token=token(Role.SUPPORT)) == "FORBIDDEN"


async def test_generated_codes_are_unique_unambiguous_and_a_retry_generates_nothing_more(gql, admin):
    gift = await coupon_gift(gql, admin)
    args = {"g": gift["id"], "n": 300, "key": "gen-1", "prefix": "FREE-", "len": 8}
    made = (await gql.ok(GENERATE, args, token=admin))["generateCouponCodes"]
    assert made["added"] == 300 and not made["replayed"]
    again = (await gql.ok(GENERATE, args, token=admin))["generateCouponCodes"]
    assert again == {**made, "replayed": True}
    assert await gql.error_code(GENERATE, {**args, "n": 5}, token=admin) == "IDEMPOTENCY_CONFLICT"
    assert await gql.error_code(GENERATE, {**args, "key": "g2", "len": 6, "n": 600}, token=admin) == "BAD_USER_INPUT"
    assert await gql.error_code(GENERATE, {**args, "key": "g3", "prefix": "free"}, token=admin) == "BAD_USER_INPUT"
    status = await pool(gql, admin, gift["id"])
    assert status["counts"]["total"] == 300 == status["giftStock"]


POOL_SIZE = 10  # as the physical race (stock 10): more winners only lengthens the contended window


async def test_two_hundred_concurrent_redeemers_never_get_the_same_code(gql, admin, services, db):
    """200 redemptions at once (50 members, 4 each) for a pool of 10 codes: 10 orders, 10 distinct codes."""
    gift = await coupon_gift(gql, admin)
    await import_codes(gql, admin, gift["id"], [f"RACE-{i:03d}" for i in range(POOL_SIZE)])
    members = [f"m{i:02d}" for i in range(50)]
    tokens = {m: await member_with(services, m, points=1000) for m in members}
    attempts = [(members[i % 50], f"k{i}") for i in range(200)]
    results = await asyncio.gather(*(redeem(gql, tokens[m], m, gift["id"], key) for m, key in attempts))
    sold = [r["data"]["redeemGift"] for r in results if "errors" not in r]
    assert len(sold) == POOL_SIZE
    assert {r["errors"][0]["extensions"]["code"] for r in results if "errors" in r} == {"OUT_OF_STOCK"}
    codes = []
    for order in sold:
        assert order["status"] == "FULFILLED"
        codes += [c["code"] for c in (await order_codes(gql, admin, order["id"]))["coupons"]]
    assert len(codes) == len(set(codes)) == POOL_SIZE
    assert set(codes) == {f"RACE-{i:03d}" for i in range(POOL_SIZE)}
    assert await db["coupon_codes"].count_documents({"status": "ASSIGNED"}) == POOL_SIZE
    assert len(await db["coupon_codes"].distinct("orderId")) == POOL_SIZE
    status = await pool(gql, admin, gift["id"])
    assert status["counts"]["available"] == 0 == status["giftStock"] and status["counts"]["assigned"] == POOL_SIZE
    assert sum([1000 - await available(services, m) for m in members]) == POOL_SIZE * 100
    assert (await gql.ok(GIFT, {"id": gift["id"]}))["gift"]["status"] == "SOLD_OUT"
    assert await audit_all(db) == []


async def test_cancel_in_the_window_returns_the_code_unless_it_was_used(gql, admin, services, clock, caplog):
    caplog.set_level(logging.DEBUG)
    gift = await coupon_gift(gql, admin, cancelWindowMinutes=60)
    await import_codes(gql, admin, gift["id"], ["ONLY-ONE"])
    alice = await member_with(services, "alice", points=1000)
    first = (await redeem(gql, alice, "alice", gift["id"], "a1"))["data"]["redeemGift"]["id"]
    assert (await gql.ok(GIFT, {"id": gift["id"]}))["gift"]["stock"] == 0
    clock.advance(timedelta(minutes=59))
    cancelled = await gql.ok(CANCEL, {"id": first}, token=alice)
    assert cancelled["cancelRedemption"]["status"] == "CANCELLED"
    assert (await order_codes(gql, alice, first))["coupons"] == []  # the code left with the cancel
    assert await available(services, "alice") == 1000
    assert (await gql.ok(GIFT, {"id": gift["id"]}))["gift"]["stock"] == 1
    # The returned code is no longer alice's: a storefront cannot accept it from her.
    assert await gql.error_code(USED, {"code": "ONLY-ONE", "m": "alice", "ref": "o1"}, token=token(Role.PAYMENTS)) == (
        "COUPON_NOT_FOUND"
    )

    second = (await redeem(gql, alice, "alice", gift["id"], "a2"))["data"]["redeemGift"]["id"]
    assert (await order_codes(gql, alice, second))["coupons"][0]["code"] == "ONLY-ONE"
    payments = token(Role.PAYMENTS, "checkout")
    used = {"code": " ONLY-ONE ", "m": "alice", "ref": "shop-order-7"}
    assert (await gql.ok(USED, used, token=payments))["markCouponUsed"] == {
        "giftId": gift["id"],
        "redemptionId": second,
        "reference": "shop-order-7",
    }
    assert (await gql.ok(USED, used, token=payments))["markCouponUsed"]["redemptionId"] == second  # a retry
    assert await gql.error_code(USED, {**used, "ref": "shop-order-8"}, token=payments) == "COUPON_ALREADY_USED"
    assert await gql.error_code(USED, {**used, "m": "bob"}, token=payments) == "COUPON_NOT_FOUND"
    assert await gql.error_code(USED, {**used, "code": "NOPE"}, token=payments) == "COUPON_NOT_FOUND"
    assert await gql.error_code(USED, used, token=token(Role.MEMBER, "alice")) == "FORBIDDEN"
    assert (await order_codes(gql, alice, second))["coupons"][0]["status"] == "USED"
    assert await gql.error_code(CANCEL, {"id": second}, token=alice) == "COUPON_USED"
    assert await gql.error_code(CANCEL, {"id": second}, token=admin) == "COUPON_USED"

    await import_codes(gql, admin, gift["id"], ["LATE-ONE"])
    third = (await redeem(gql, alice, "alice", gift["id"], "a3"))["data"]["redeemGift"]["id"]
    clock.advance(timedelta(minutes=60))
    assert await gql.error_code(CANCEL, {"id": third}, token=alice) == "CANCEL_WINDOW_CLOSED"
    status = await pool(gql, admin, gift["id"])
    assert status["counts"] == {"total": 2, "available": 0, "assigned": 1, "used": 1, "expired": 0, "void": 0}
    assert "ONLY-ONE" not in caplog.text and "LATE-ONE" not in caplog.text  # nor in any refusal's log line


async def test_the_pool_running_out_and_codes_expiring_keep_stock_eligibility_and_pool_in_step(
    gql, admin, services, clock
):
    gift = await coupon_gift(gql, admin)
    soon = (clock.now() + DAY).isoformat()
    await import_codes(gql, admin, gift["id"], ["LATER-1"], exp=(clock.now() + 30 * DAY).isoformat())
    await import_codes(gql, admin, gift["id"], ["SOON-1", "SOON-2"], exp=soon)
    alice = await member_with(services, "alice", points=1000)
    first = (await redeem(gql, alice, "alice", gift["id"], "e1"))["data"]["redeemGift"]["id"]
    assert (await order_codes(gql, alice, first))["coupons"][0]["code"].startswith("SOON-")  # soonest expiry first
    status = await pool(gql, admin, gift["id"])
    assert status["nextExpiry"].startswith(soon[:19])

    clock.advance(DAY)  # SOON-2 in the pool and alice's SOON code expire now
    mine = (await order_codes(gql, alice, first))["coupons"][0]
    assert mine["status"] == "EXPIRED"
    assert await services.coupons.expire_due() == 1  # the sweep: out of the pool, out of the stock
    status = await pool(gql, admin, gift["id"])
    assert status["counts"] == {"total": 3, "available": 1, "assigned": 0, "used": 0, "expired": 2, "void": 0}
    assert status["giftStock"] == 1

    second = (await redeem(gql, alice, "alice", gift["id"], "e2"))["data"]["redeemGift"]["id"]
    assert (await order_codes(gql, alice, second))["coupons"][0]["code"] == "LATER-1"
    eligibility = (await gql.ok(ELIGIBILITY, {"id": gift["id"], "memberId": "alice"}, token=alice))["gift"]
    assert eligibility["eligibility"] == {"canRedeem": False, "reason": "OUT_OF_STOCK"}
    assert (await redeem(gql, alice, "alice", gift["id"], "e3"))["errors"][0]["extensions"]["code"] == "OUT_OF_STOCK"

    # A code that expires before the sweep runs is never handed out; the refusal sets the stock right.
    await import_codes(gql, admin, gift["id"], ["BRIEF-1"], exp=(clock.now() + timedelta(minutes=5)).isoformat())
    clock.advance(timedelta(minutes=5))
    assert (await gql.ok(GIFT, {"id": gift["id"]}))["gift"]["stock"] == 1
    assert (await redeem(gql, alice, "alice", gift["id"], "e4"))["errors"][0]["extensions"]["code"] == "OUT_OF_STOCK"
    assert (await gql.ok(GIFT, {"id": gift["id"]}))["gift"]["stock"] == 0
    assert await available(services, "alice") == 800


async def test_voiding_leaked_codes_takes_them_out_of_stock(gql, admin, services, db):
    gift = await coupon_gift(gql, admin)
    await import_codes(gql, admin, gift["id"], ["V1", "V2", "V3"])
    alice = await member_with(services, "alice", points=1000)
    order = (await redeem(gql, alice, "alice", gift["id"], "v"))["data"]["redeemGift"]["id"]
    given = (await order_codes(gql, alice, order))["coupons"][0]["code"]
    result = await gql.ok(VOID, {"g": gift["id"], "codes": ["V1", "V2", "V3", "NOPE"]}, token=admin)
    assert result["voidCouponCodes"] == {"voided": 2, "notAvailable": 1, "notFound": 1}
    status = await pool(gql, admin, gift["id"])
    assert status["counts"]["void"] == 2 and status["giftStock"] == 0 == status["counts"]["available"]
    assert (await order_codes(gql, alice, order))["coupons"][0]["code"] == given  # alice's code is untouched
    entry = await db["adminAudit"].find_one({"details.op": "void"})
    assert entry["reason"] == "leaked on a forum" and entry["targetId"] == gift["id"]


async def test_a_points_and_cash_coupon_shows_its_code_only_once_paid(gql, admin, services):
    gift = await coupon_gift(gql, admin, cash=500, costPrice=2000)
    await import_codes(gql, admin, gift["id"], ["PAID-1"])
    alice = await member_with(services, "alice", points=1000)
    placed = (await redeem(gql, alice, "alice", gift["id"], "p", cash=500))["data"]["redeemGift"]
    assert placed["status"] == "AWAITING_PAYMENT"
    assert (await order_codes(gql, alice, placed["id"]))["coupons"] == []
    confirm = (
        'mutation($id: ID!) { confirmRedemptionPayment(id: $id, paymentReference: "pay-1", amount: 500) { status } }'
    )
    paid = await gql.ok(confirm, {"id": placed["id"]}, token=token(Role.PAYMENTS, "psp"))
    assert paid["confirmRedemptionPayment"]["status"] == "FULFILLED"
    order = await order_codes(gql, alice, placed["id"])
    assert order["coupons"][0]["code"] == "PAID-1" and order["cancelUntil"] is not None

    # Unpaid in time: the sweeper cancels the order and its code goes back to the pool.
    await import_codes(gql, admin, gift["id"], ["PAID-2"])
    unpaid = (await redeem(gql, alice, "alice", gift["id"], "p2", cash=500))["data"]["redeemGift"]
    assert (await gql.ok(GIFT, {"id": gift["id"]}))["gift"]["stock"] == 0
    services.clock.advance(timedelta(minutes=31))
    assert (await sweep_expired_holds(services)).cancelled_redemptions == 1
    assert (await order_codes(gql, alice, unpaid["id"]))["status"] == "CANCELLED"
    assert (await gql.ok(GIFT, {"id": gift["id"]}))["gift"]["stock"] == 1


async def test_coupon_orders_count_in_top_gifts_and_are_not_shipping_notifications(gql, admin, services, db):
    gift = await coupon_gift(gql, admin)
    await import_codes(gql, admin, gift["id"], ["T1", "T2"])
    alice = await member_with(services, "alice", points=1000)
    await redeem(gql, alice, "alice", gift["id"], "t1")
    await redeem(gql, alice, "alice", gift["id"], "t2")
    month = services.clock.now().date().replace(day=1).isoformat()
    top = """query($from: Date!, $to: Date!) { topGifts(from: $from, to: $to, first: 5) {
      gift { id name } redemptions points } }"""
    today = services.clock.now().date().isoformat()
    rows = (await gql.ok(top, {"from": month, "to": today}, token=token(Role.DASHBOARD, "wall")))["topGifts"]
    assert rows == [{"gift": {"id": gift["id"], "name": "满100减10"}, "redemptions": 2, "points": 200}]
    from gateway.store.notifications import shipped_since

    now = services.clock.now()
    assert await shipped_since(db, now - DAY, now + DAY) == []


async def test_a_coupon_nobody_redeemed_is_deleted_with_its_pool_and_a_sold_one_is_not(gql, admin, services, db):
    delete = "mutation($id: ID!) { deleteGift(id: $id) }"
    unsold = await coupon_gift(gql, admin)
    await import_codes(gql, admin, unsold["id"], ["DEL-1", "DEL-2"])
    assert (await gql.ok(delete, {"id": unsold["id"]}, token=admin))["deleteGift"] is True
    assert await db["coupon_codes"].count_documents({}) == 0 and await db["coupon_batches"].count_documents({}) == 0
    sold = await coupon_gift(gql, admin)
    assert (await import_codes(gql, admin, sold["id"], ["DEL-1", "DEL-2"]))["added"] == 2  # the codes are free again
    alice = await member_with(services, "alice", points=1000)
    await redeem(gql, alice, "alice", sold["id"], "d")
    assert await gql.error_code(delete, {"id": sold["id"]}, token=admin) == "GIFT_HAS_REDEMPTIONS"


async def test_a_members_coupons_for_their_own_export(gql, admin, services):
    gift = await coupon_gift(gql, admin)
    await import_codes(gql, admin, gift["id"], ["MINE-1", "MINE-2"])
    alice = await member_with(services, "alice", points=1000)
    order = (await redeem(gql, alice, "alice", gift["id"], "x", quantity=2))["data"]["redeemGift"]["id"]
    mine = await services.coupons.member_codes("alice")
    assert sorted(c["code"] for c in mine) == ["MINE-1", "MINE-2"]
    assert {(c["redemptionId"], c["status"]) for c in mine} == {(order, "ISSUED")}
    assert await services.coupons.member_codes("bob") == []


async def test_merged_accounts_take_their_coupons_along_and_an_unmerge_takes_them_back(gql, admin, services):
    gift = await coupon_gift(gql, admin)
    await import_codes(gql, admin, gift["id"], ["MERGE-1"])
    await member_with(services, "a1")
    dup = await member_with(services, "a2", points=1000)
    await redeem(gql, dup, "a2", gift["id"], "m")
    merge = """mutation($input: MergeMembersInput!) { mergeMembers(input: $input) { id } }"""
    merged = await gql.ok(
        merge,
        {"input": {"sourceId": "a2", "targetId": "a1", "reason": "same person", "idempotencyKey": "mg"}},
        token=admin,
    )
    assert [c["code"] for c in await services.coupons.member_codes("a1")] == ["MERGE-1"]
    used = {"code": "MERGE-1", "ref": "shop-1"}
    mark = (
        'mutation($code: String!, $ref: String!) { markCouponUsed(code: $code, memberId: "a1", reference: $ref) '
        "{ reference } }"
    )
    assert (await gql.ok(mark, used, token=token(Role.PAYMENTS, "checkout")))["markCouponUsed"]["reference"] == "shop-1"
    unmerge = 'mutation($id: String!) { unmergeMembers(mergeId: $id, reason: "not the same") { status } }'
    await gql.ok(unmerge, {"id": merged["mergeMembers"]["id"]}, token=admin)
    assert [(c["code"], c["status"]) for c in await services.coupons.member_codes("a2")] == [("MERGE-1", "USED")]


async def test_the_members_data_export_lists_their_coupons_without_sealed_or_hashed_codes(gql, admin, services):
    gift = await coupon_gift(gql, admin)
    await import_codes(gql, admin, gift["id"], ["EXPORT-777"])
    alice = await member_with(services, "alice", points=1000)
    order = (await redeem(gql, alice, "alice", gift["id"], "x"))["data"]["redeemGift"]["id"]
    export = 'mutation { exportMemberData(memberId: "alice", reason: "PIPL-1") { document } }'
    document = json.loads((await gql.ok(export, token=admin))["exportMemberData"]["document"])
    (coupon,) = document["coupons"]
    assert (coupon["orderId"], coupon["status"], coupon["hint"]) == (order, "ASSIGNED", "…-777")
    assert "sealed" not in coupon and "codeHash" not in coupon
