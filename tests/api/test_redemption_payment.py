"""Points + cash redemptions wait for a trusted payment confirmation (issue 11 item 2)."""

from __future__ import annotations

from datetime import timedelta

from gateway.core.auth import Role
from gateway.features.audit import audit_all
from tests.conftest import token
from tests.support.catalog_helpers import CANCEL, FULFILL, create_gift, member_with, redeem

ORDER_FIELDS = "id status points cashDue cashPaid paymentReference paymentDueAt paidAt cancelReason"
CONFIRM = f"""
mutation($id: ID!, $ref: String!, $amount: Int!) {{
  confirmRedemptionPayment(id: $id, paymentReference: $ref, amount: $amount) {{ {ORDER_FIELDS} }}
}}"""
ORDER = f"query($id: ID!) {{ redemption(id: $id) {{ {ORDER_FIELDS} }} }}"
BALANCES = "query($id: ID!) { member(id: $id) { points { available held spent } } }"


async def balances(gql, admin, member_id):
    return (await gql.ok(BALANCES, {"id": member_id}, token=admin))["member"]["points"]


async def stock(db, gift_id):
    return (await db["gifts"].find_one({"_id": gift_id}))["stock"]


async def place(gql, admin, services, who="gus", key="k1"):
    gift = await create_gift(gql, admin, points=1_500, cash=30_000)
    me = await member_with(services, who, points=2_000)
    body = await redeem(gql, me, who, gift["id"], key, cash=30_000)
    return gift, me, body["data"]["redeemGift"]


async def test_points_plus_cash_waits_for_payment_with_stock_and_points_held(gql, admin, db, services):
    gift, _me, order = await place(gql, admin, services)
    assert order["status"] == "AWAITING_PAYMENT"
    seen = (await gql.ok(ORDER, {"id": order["id"]}, token=admin))["redemption"]
    assert (seen["cashDue"], seen["cashPaid"], seen["paymentReference"]) == (30_000, 0, None)
    assert seen["paymentDueAt"] is not None
    assert await balances(gql, admin, "gus") == {"available": 500, "held": 1_500, "spent": 0}
    assert await stock(db, gift["id"]) == 9
    assert await gql.error_code(FULFILL, {"id": order["id"]}, token=admin) == "INVALID_STATE"
    payments = token(Role.PAYMENTS, "psp-1")
    paid = (await gql.ok(CONFIRM, {"id": order["id"], "ref": "pay_123", "amount": 30_000}, token=payments))[
        "confirmRedemptionPayment"
    ]
    assert (paid["status"], paid["cashPaid"], paid["paymentReference"]) == ("PLACED", 30_000, "pay_123")
    assert paid["paidAt"] is not None
    assert await balances(gql, admin, "gus") == {"available": 500, "held": 0, "spent": 1_500}
    again = (await gql.ok(CONFIRM, {"id": order["id"], "ref": "pay_123", "amount": 30_000}, token=admin))[
        "confirmRedemptionPayment"
    ]
    assert again == paid  # a retried confirmation is harmless
    await gql.ok(FULFILL, {"id": order["id"]}, token=admin)
    assert await audit_all(db) == []


async def test_only_trusted_callers_confirm_and_with_the_right_amount(gql, admin, db, services):
    gift, me, order = await place(gql, admin, services)
    variables = {"id": order["id"], "ref": "pay_1", "amount": 30_000}
    assert await gql.error_code(CONFIRM, variables, token=me) == "FORBIDDEN"  # the member's word is not payment
    assert await gql.error_code(CONFIRM, variables, token=token(Role.DASHBOARD, "d")) == "FORBIDDEN"
    assert await gql.error_code(CONFIRM, variables) == "UNAUTHENTICATED"
    short = {**variables, "amount": 29_999}
    assert await gql.error_code(CONFIRM, short, token=admin) == "PAYMENT_AMOUNT_MISMATCH"
    blank = {**variables, "ref": " "}
    assert await gql.error_code(CONFIRM, blank, token=admin) == "BAD_USER_INPUT"
    assert await gql.error_code(CONFIRM, {**variables, "id": "red_nope"}, token=admin) == "REDEMPTION_NOT_FOUND"
    assert (await gql.ok(ORDER, {"id": order["id"]}, token=admin))["redemption"]["status"] == "AWAITING_PAYMENT"
    assert await balances(gql, admin, "gus") == {"available": 500, "held": 1_500, "spent": 0}
    await gql.ok(CONFIRM, variables, token=admin)
    other = (await redeem(gql, admin, "gus", gift["id"], "k2", cash=30_000))["errors"][0]["extensions"]["code"]
    assert other == "INSUFFICIENT_POINTS"
    await member_with(services, "hal", points=2_000)
    second = (await redeem(gql, admin, "hal", gift["id"], "k3", cash=30_000))["data"]["redeemGift"]
    reused = {"id": second["id"], "ref": "pay_1", "amount": 30_000}
    assert await gql.error_code(CONFIRM, reused, token=admin) == "PAYMENT_REFERENCE_USED"
    assert await audit_all(db) == []


async def test_an_unpaid_order_is_cancelled_after_the_timeout(gql, admin, db, clock, services):
    from gateway.workers.holds import sweep_expired_holds

    gift, _me, order = await place(gql, admin, services)
    clock.advance(timedelta(minutes=services.settings.payment_timeout_minutes) - timedelta(seconds=1))
    assert (await sweep_expired_holds(services)).cancelled_redemptions == 0
    clock.advance(timedelta(seconds=1))
    late = {"id": order["id"], "ref": "pay_late", "amount": 30_000}
    assert await gql.error_code(CONFIRM, late, token=admin) == "PAYMENT_EXPIRED"
    swept = await sweep_expired_holds(services)
    assert swept.cancelled_redemptions == 1
    seen = (await gql.ok(ORDER, {"id": order["id"]}, token=admin))["redemption"]
    assert seen["status"] == "CANCELLED" and "payment" in seen["cancelReason"].lower()
    assert await balances(gql, admin, "gus") == {"available": 2_000, "held": 0, "spent": 0}
    assert await stock(db, gift["id"]) == 10
    assert await gql.error_code(CONFIRM, late, token=admin) == "INVALID_STATE"
    assert (await sweep_expired_holds(services)).cancelled_redemptions == 0
    assert await audit_all(db) == []


async def test_the_member_may_cancel_while_awaiting_payment(gql, admin, db, services):
    gift, me, order = await place(gql, admin, services)
    cancelled = (await gql.ok(CANCEL, {"id": order["id"]}, token=me))["cancelRedemption"]
    assert cancelled["status"] == "CANCELLED"
    assert await balances(gql, admin, "gus") == {"available": 2_000, "held": 0, "spent": 0}
    assert await stock(db, gift["id"]) == 10
    assert await audit_all(db) == []


async def test_pure_points_orders_are_placed_at_once(gql, admin, db, services):
    gift = await create_gift(gql, admin, points=100)
    me = await member_with(services, "ivy", points=500)
    order = (await redeem(gql, me, "ivy", gift["id"], "p1"))["data"]["redeemGift"]
    assert order["status"] == "PLACED"
    assert await balances(gql, admin, "ivy") == {"available": 400, "held": 0, "spent": 100}
    assert await audit_all(db) == []
