"""Referral farming (issue 11 item 4): refunding the first purchase takes the referral back."""

from __future__ import annotations

from datetime import timedelta

from gateway.features.audit import audit_all
from tests.support.points_helpers import REGISTER, member, purchase

REFUND = """
mutation($input: RefundPurchaseInput!) {
  refundPurchase(input: $input) { points referralRevoked entries { kind memberId points reason } }
}"""


async def refund(gql, admin, member_id, order_id, amount, key):
    variables = {"input": {"memberId": member_id, "orderId": order_id, "amount": amount, "idempotencyKey": key}}
    return (await gql.ok(REFUND, variables, token=admin))["refundPurchase"]


async def referred(gql, admin):
    await gql.ok(REGISTER, {"i": {"id": "alice", "displayName": "Alice"}}, token=admin)
    await gql.ok(REGISTER, {"i": {"id": "bob", "displayName": "Bob", "referrerId": "alice"}}, token=admin)


async def test_a_fully_refunded_first_purchase_takes_the_referral_back(gql, admin, db):
    await referred(gql, admin)
    await purchase(gql, admin, "bob", "o-1", 100)  # ¥1: joins, pays alice 100 referral points
    assert (await member(gql, admin, "alice"))["points"]["pending"] == 100
    result = await refund(gql, admin, "bob", "o-1", 100, "r1")
    assert result["referralRevoked"] is True
    revoked = [e for e in result["entries"] if e["kind"] == "REFERRAL_REVOKED"]
    assert len(revoked) == 1 and revoked[0]["memberId"] == "alice" and revoked[0]["points"] == -100
    assert "bob" in revoked[0]["reason"] and "refund" in revoked[0]["reason"].lower()
    alice = (await member(gql, admin, "alice"))["points"]
    assert (alice["pending"], alice["available"], alice["lifetimeEarned"]) == (0, 0, 0)
    assert await audit_all(db) == []


async def test_partial_refunds_keep_the_referral_while_a_qualifying_purchase_is_kept(gql, admin, db):
    await referred(gql, admin)
    await purchase(gql, admin, "bob", "o-1", 10_000)
    kept = await refund(gql, admin, "bob", "o-1", 9_900, "r1")  # ¥1 kept: still a real first purchase
    assert kept["referralRevoked"] is False
    assert (await member(gql, admin, "alice"))["points"]["pending"] == 100
    gone = await refund(gql, admin, "bob", "o-1", 1, "r2")  # ¥0.99 kept: below the ¥1 that makes a member
    assert gone["referralRevoked"] is True
    assert (await member(gql, admin, "alice"))["points"]["pending"] == 0
    last = await refund(gql, admin, "bob", "o-1", 99, "r3")  # nothing left to revoke twice
    assert last["referralRevoked"] is False
    assert [e["kind"] for e in last["entries"]] == ["REFUND"]
    assert await audit_all(db) == []


async def test_a_later_order_refund_does_not_touch_the_referral(gql, admin, db):
    await referred(gql, admin)
    await purchase(gql, admin, "bob", "o-1", 1_000)
    await purchase(gql, admin, "bob", "o-2", 1_000)
    result = await refund(gql, admin, "bob", "o-2", 1_000, "r1")
    assert result["referralRevoked"] is False
    assert (await member(gql, admin, "alice"))["points"]["pending"] == 100
    assert await audit_all(db) == []


async def test_revoking_an_already_spent_referral_follows_the_refund_rules(gql, admin, db, clock):
    """Once alice spent the released referral points, the revocation records the shortfall."""
    from tests.support.points_helpers import DEDUCT

    await referred(gql, admin)
    await purchase(gql, admin, "bob", "o-1", 200)
    clock.advance(timedelta(days=8))  # the return window closed: alice's 100 points are available
    deduct = {"memberId": "alice", "orderId": "c-1", "orderAmount": 20_000, "points": 100, "idempotencyKey": "d"}
    await gql.ok(DEDUCT, {"input": deduct}, token=admin)
    result = await refund(gql, admin, "bob", "o-1", 200, "r1")
    assert result["referralRevoked"] is True
    entry = await db.ledger.find_one({"kind": "REFERRAL_REVOKED"})
    assert (entry["requested"], entry["shortfall"]) == (100, 100)
    assert await audit_all(db) == []
