"""Deduction at checkout is two-phase (issue 11 item 3): a hold, posted by the purchase,
voided by cancelling the checkout or by its timeout. Through GraphQL."""

from __future__ import annotations

from datetime import timedelta

from gateway.core.auth import Role
from gateway.features.audit import audit_all
from tests.conftest import token
from tests.support.points_helpers import MEMBER_FIELDS, grant, member, refund, register

HELD_FIELDS = MEMBER_FIELDS.replace("expired }", "expired held }")

DEDUCT = f"""
mutation($input: DeductPointsInput!) {{
  deductPointsAtCheckout(input: $input) {{
    orderId points valueFen status holdExpiresAt replayed member {{ {HELD_FIELDS} }}
  }}
}}
"""

CANCEL = f"""
mutation($id: ID!, $order: String!) {{
  cancelCheckoutDeduction(memberId: $id, orderId: $order) {{
    orderId points status replayed member {{ {HELD_FIELDS} }} entries {{ kind points }}
  }}
}}
"""

PURCHASE = f"""
mutation($input: RecordPurchaseInput!) {{
  recordPurchase(input: $input) {{
    orderId points pointsDeducted member {{ {HELD_FIELDS} }} entries {{ kind points delta {{ held spent }} }}
  }}
}}
"""


def deduct_vars(order_id, points, amount=10_000, member_id="m", key=None):
    return {
        "input": {
            "memberId": member_id,
            "orderId": order_id,
            "orderAmount": amount,
            "points": points,
            "idempotencyKey": key or f"d-{order_id}",
        }
    }


def buy_vars(order_id, amount, member_id="m"):
    return {"input": {"memberId": member_id, "orderId": order_id, "amount": amount, "idempotencyKey": f"b-{order_id}"}}


async def setup(gql, admin, points=10_000):
    await register(gql, admin, "m")
    await grant(gql, admin, "m", points, "g")
    return token(Role.MEMBER, "m")


async def test_deduction_holds_the_points_and_the_purchase_posts_them(gql, admin, db):
    me = await setup(gql, admin)
    held = (await gql.ok(DEDUCT, deduct_vars("c-1", 2_000), token=me))["deductPointsAtCheckout"]
    assert held["status"] == "HELD" and held["holdExpiresAt"]
    points = held["member"]["points"]
    assert (points["available"], points["held"], points["spent"]) == (8_000, 2_000, 0)  # held, not spendable
    assert await audit_all(db) == []
    bought = (await gql.ok(PURCHASE, buy_vars("c-1", 8_000), token=admin))["recordPurchase"]
    assert bought["pointsDeducted"] == 2_000
    points = bought["member"]["points"]
    assert (points["available"], points["held"], points["spent"]) == (8_000, 0, 2_000)
    posted = [e for e in bought["entries"] if e["kind"] == "DEDUCTION"]
    assert posted == [{"kind": "DEDUCTION", "points": -2_000, "delta": {"held": -2_000, "spent": 2_000}}]
    assert await audit_all(db) == []


async def test_a_purchase_over_the_cap_is_refused_and_nothing_is_applied(gql, admin, db):
    """The caller claimed a ¥100 order to use ¥50 of points, then the real order paid ¥10 in cash."""
    me = await setup(gql, admin)
    await gql.ok(DEDUCT, deduct_vars("c-1", 5_000, amount=10_000), token=me)
    before = await member(gql, admin, "m")
    body = await gql(PURCHASE, buy_vars("c-1", 1_000), token=admin)
    assert body["errors"][0]["extensions"]["code"] == "DEDUCTION_OVER_CAP"
    assert body["errors"][0]["extensions"]["maxPoints"] == 3_000
    assert await member(gql, admin, "m") == before  # no purchase, no spend, no points, hold still held
    assert await db["purchases"].count_documents({}) == 0
    assert (await db.members.find_one({"_id": "m"}))["balances"]["held"] == 5_000
    ok = (await gql.ok(PURCHASE, buy_vars("c-1", 5_000), token=admin))["recordPurchase"]  # the honest order
    assert ok["pointsDeducted"] == 5_000
    assert await audit_all(db) == []


async def test_cancelling_the_checkout_voids_the_hold(gql, admin, db):
    me = await setup(gql, admin)
    await gql.ok(DEDUCT, deduct_vars("c-1", 3_000), token=me)
    voided = (await gql.ok(CANCEL, {"id": "m", "order": "c-1"}, token=me))["cancelCheckoutDeduction"]
    assert voided["status"] == "VOIDED"
    assert voided["entries"] == [{"kind": "DEDUCTION_VOID", "points": 0}]
    points = voided["member"]["points"]
    assert (points["available"], points["held"], points["spent"]) == (10_000, 0, 0)
    again = (await gql.ok(CANCEL, {"id": "m", "order": "c-1"}, token=me))["cancelCheckoutDeduction"]
    assert again["status"] == "VOIDED" and again["member"]["points"]["available"] == 10_000
    # the checkout can be retried on the same order, and a purchase then posts the new hold only
    await gql.ok(DEDUCT, deduct_vars("c-1", 1_000, key="retry"), token=me)
    bought = (await gql.ok(PURCHASE, buy_vars("c-1", 9_000), token=admin))["recordPurchase"]
    assert bought["pointsDeducted"] == 1_000
    assert bought["member"]["points"]["available"] == 9_000
    code = await gql.error_code(CANCEL, {"id": "m", "order": "c-1"}, token=me)
    assert code == "HOLD_ALREADY_POSTED"
    assert await gql.error_code(CANCEL, {"id": "m", "order": "nope"}, token=me) == "DEDUCTION_NOT_FOUND"
    assert await gql.error_code(CANCEL, {"id": "m", "order": "c-1"}, token=token(Role.MEMBER, "x")) == "FORBIDDEN"
    assert await audit_all(db) == []


async def test_an_abandoned_checkout_is_voided_by_the_timeout(gql, admin, db, clock, services):
    from gateway.workers.holds import sweep_expired_holds

    me = await setup(gql, admin)
    held = (await gql.ok(DEDUCT, deduct_vars("c-1", 2_500), token=me))["deductPointsAtCheckout"]
    assert (await sweep_expired_holds(services)).voided == 0
    clock.advance(timedelta(minutes=services.settings.checkout_hold_minutes))
    code = await gql.error_code(PURCHASE, buy_vars("c-1", 8_000), token=admin)
    assert code == "HOLD_EXPIRED"  # a hold past its deadline can no longer post, even before the sweep
    swept = await sweep_expired_holds(services)
    assert swept.voided == 1
    seen = await member(gql, admin, "m")
    assert (seen["points"]["available"], seen["points"]["spent"]) == (10_000, 0)
    assert (await sweep_expired_holds(services)).voided == 0
    assert held["holdExpiresAt"]
    assert await audit_all(db) == []


async def test_a_refund_returns_the_posted_points(gql, admin, db):
    me = await setup(gql, admin)
    await gql.ok(DEDUCT, deduct_vars("c-1", 2_000), token=me)
    await gql.ok(PURCHASE, buy_vars("c-1", 8_000), token=admin)
    half = await refund(gql, admin, "m", "c-1", 4_000, "r1")
    assert half["pointsReturned"] == 1_000
    rest = await refund(gql, admin, "m", "c-1", 4_000, "r2")
    assert rest["pointsReturned"] == 1_000
    seen = await member(gql, admin, "m")
    assert (seen["points"]["available"], seen["points"]["spent"]) == (10_000, 0)
    assert await audit_all(db) == []


async def test_the_audit_covers_holds(gql, admin, db):
    me = await setup(gql, admin)
    await gql.ok(DEDUCT, deduct_vars("c-1", 2_000), token=me)
    assert await audit_all(db) == []
    await db["holds"].update_one({"memberId": "m"}, {"$set": {"points": 1_500}})
    problems = [m.problem for m in await audit_all(db)]
    assert any("held" in p for p in problems), problems
