"""Purchases and refunds through GraphQL on the real MongoDB: tiers, pending points, refunds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.core.auth import Role
from gateway.features.audit import audit_all
from tests.conftest import token
from tests.support.points_helpers import DEDUCT, PURCHASE, member, purchase, refund

REGISTER = "mutation($i: RegisterMemberInput!) { registerMember(input: $i) { id } }"


async def test_seed_000_tiers_end_to_end(gql, admin, db):
    """¥1 → MEMBER, ¥380 → SENIOR, ¥2,000 → VIP, ¥5,000 → SUPREME_VIP, discounts and benefits visible."""
    first = await purchase(gql, admin, "buyer", "o-1", 100)
    assert first["joined"] is True and first["tierAfter"] == "MEMBER"
    assert first["member"]["tier"]["pricePercent"] == 98
    senior = await purchase(gql, admin, "buyer", "o-2", 37_900)
    assert (senior["tierBefore"], senior["tierAfter"]) == ("MEMBER", "SENIOR")
    assert senior["member"]["tier"]["pricePercent"] == 95
    assert {b["code"] for b in senior["member"]["tier"]["benefits"]} == {"GIFT_REDEMPTION", "MEMBER_DAY_PRICES"}
    vip = await purchase(gql, admin, "buyer", "o-3", 162_000)
    assert vip["tierAfter"] == "VIP" and vip["member"]["lifetimeSpend"] == 200_000
    assert vip["member"]["tier"]["pricePercent"] == 90
    supreme = await purchase(gql, admin, "buyer", "o-4", 300_000)
    assert supreme["tierAfter"] == "SUPREME_VIP" and supreme["member"]["tier"]["pricePercent"] == 86
    seen = await member(gql, admin, "buyer")
    quotas = {b["benefit"]["code"]: b for b in seen["benefits"]}
    assert quotas["FREE_SHIPPING"]["benefit"]["quota"] == {"count": 1, "period": "MONTH"}
    assert quotas["NEW_PRODUCT_DISCOUNT"]["remaining"] == 1
    assert seen["nextTier"] is None
    changes = [(c["fromTier"], c["toTier"], c["direction"]) async for c in db["tier_changes"].find().sort("at", 1)]
    assert changes == [("MEMBER", "SENIOR", "UP"), ("SENIOR", "VIP", "UP"), ("VIP", "SUPREME_VIP", "UP")]
    assert await audit_all(db) == []


async def test_purchase_points_follow_rate_tier_multiplier_and_stay_pending(gql, admin, db, clock):
    await purchase(gql, admin, "m", "o-1", 200_000)  # ¥2,000 at MEMBER (100%): 2,000 points, now VIP
    second = await purchase(gql, admin, "m", "o-2", 10_050)  # ¥100.50 at VIP 120%: 100 × 1.2 = 120
    assert second["points"] == 120
    assert second["member"]["points"]["pending"] == 2_120 and second["member"]["points"]["available"] == 0
    assert second["entries"][0]["source"] == {"type": "ORDER", "id": "o-2"}
    assert datetime.fromisoformat(second["availableAt"]) == clock.now() + timedelta(days=7)
    code = await gql.error_code(
        DEDUCT,
        {"input": {"memberId": "m", "orderId": "c-1", "orderAmount": 10_000, "points": 100, "idempotencyKey": "d"}},
        token=admin,
    )
    assert code == "INSUFFICIENT_POINTS"
    clock.advance(timedelta(days=7))
    seen = await member(gql, admin, "m")
    assert seen["points"]["available"] == 0  # nothing settled yet: reads do not write
    data = await gql.ok(
        DEDUCT,
        {"input": {"memberId": "m", "orderId": "c-1", "orderAmount": 10_000, "points": 100, "idempotencyKey": "d"}},
        token=admin,
    )
    assert data["deductPointsAtCheckout"]["member"]["points"]["available"] == 2_020
    assert await audit_all(db) == []


async def test_member_day_and_birthday_do_not_stack_but_paid_membership_does(gql, admin, db, clock):
    clock.set(datetime(2026, 3, 1, 4, 0, tzinfo=UTC))
    await gql.ok(REGISTER, {"i": {"id": "bday", "displayName": "B", "birthday": "1990-03-08"}}, token=admin)
    record = 'mutation { recordPaidMembership(memberId: "bday", plan: MONTHLY, idempotencyKey: "pm") { paidMember } }'
    assert (await gql.ok(record, token=admin))["recordPaidMembership"]["paidMember"] is True
    clock.set(datetime(2026, 3, 9, 4, 0, tzinfo=UTC))
    paid_at = datetime(2026, 3, 8, 2, 0, tzinfo=UTC)  # the 8th: member day and birthday in Shanghai
    result = await purchase(gql, admin, "bday", "o-1", 10_000, paidAt=paid_at.isoformat())
    assert result["points"] == 300  # 100 × 100% tier × 150% paid × max(200%, 200%)
    ordinary = await purchase(gql, admin, "bday", "o-2", 10_000, paidAt=(paid_at + timedelta(days=-3)).isoformat())
    assert ordinary["points"] == 150


async def test_implicit_join_can_be_switched_off(gql, admin):
    await gql.ok(
        "mutation { updateProgram(input: {implicitJoinOnPurchase: false}) { implicitJoinOnPurchase } }", token=admin
    )
    code = await gql.error_code(
        PURCHASE, {"input": {"memberId": "ghost", "orderId": "o", "amount": 100, "idempotencyKey": "k"}}, token=admin
    )
    assert code == "MEMBER_NOT_FOUND"


async def test_purchase_validation_and_permissions(gql, admin, db):
    def variables(**over):
        return {"input": {"memberId": "m", "orderId": "o-1", "amount": 100, "idempotencyKey": "k", **over}}

    assert await gql.error_code(PURCHASE, variables(amount=0), token=admin) == "BAD_USER_INPUT"
    assert await gql.error_code(PURCHASE, variables(orderId="bad id!"), token=admin) == "BAD_USER_INPUT"
    future = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    assert await gql.error_code(PURCHASE, variables(paidAt=future), token=admin) == "BAD_USER_INPUT"
    assert await gql.error_code(PURCHASE, variables(), token=token(Role.MEMBER, "m")) == "FORBIDDEN"
    await purchase(gql, admin, "m", "o-1", 100, key="k")
    replay = await purchase(gql, admin, "m", "o-1", 100, key="k")
    assert replay["replayed"] is True and replay["member"]["lifetimeSpend"] == 100
    assert await gql.error_code(PURCHASE, variables(amount=200), token=admin) == "IDEMPOTENCY_CONFLICT"
    assert await gql.error_code(PURCHASE, variables(idempotencyKey="k2"), token=admin) == "ORDER_ALREADY_RECORDED"
    assert await db["purchases"].count_documents({}) == 1


async def test_partial_then_full_refund_takes_back_exactly_what_the_order_earned(gql, admin, db):
    await purchase(gql, admin, "m", "o-1", 50_000)  # 500 points, SENIOR
    part = await refund(gql, admin, "m", "o-1", 16_700, "r1")  # a third: 500 × 167/500 = 167
    assert part["points"] == 167 and part["member"]["points"]["pending"] == 333
    replay = await refund(gql, admin, "m", "o-1", 16_700, "r1")
    assert replay["replayed"] is True and replay["member"]["points"]["pending"] == 333
    assert (part["tierBefore"], part["tierAfter"]) == ("SENIOR", "MEMBER")
    rest = await refund(gql, admin, "m", "o-1", 33_300, "r2")
    assert rest["points"] == 333 and rest["member"]["points"] == {
        "available": 0,
        "pending": 0,
        "lifetimeEarned": 0,
        "spent": 0,
        "expired": 0,
    }
    assert rest["member"]["lifetimeSpend"] == 0
    code = await gql.error_code(
        "mutation($i: RefundPurchaseInput!) { refundPurchase(input: $i) { points } }",
        {"i": {"memberId": "m", "orderId": "o-1", "amount": 1, "idempotencyKey": "r3"}},
        token=admin,
    )
    assert code == "BAD_USER_INPUT"
    downs = [c async for c in db["tier_changes"].find({"direction": "DOWN"})]
    assert [(c["fromTier"], c["toTier"]) for c in downs] == [("SENIOR", "MEMBER")]
    assert await audit_all(db) == []


async def test_refund_of_an_order_whose_points_were_already_spent(gql, admin, db, clock):
    await purchase(gql, admin, "m", "o-1", 10_000)  # 100 points
    clock.advance(timedelta(days=8))
    await gql.ok(
        DEDUCT,
        {"input": {"memberId": "m", "orderId": "c-1", "orderAmount": 20_000, "points": 80, "idempotencyKey": "d"}},
        token=admin,
    )
    result = await refund(gql, admin, "m", "o-1", 10_000, "r")
    assert result["points"] == 100 and result["shortfall"] == 80
    assert result["member"]["points"]["available"] == 0
    assert await audit_all(db) == []


async def test_refund_into_debt_when_the_program_allows_negative_balances(gql, admin, db, clock):
    await gql.ok(
        "mutation { updateProgram(input: {allowNegativeBalance: true}) { allowNegativeBalance } }", token=admin
    )
    await purchase(gql, admin, "m", "o-1", 10_000)
    clock.advance(timedelta(days=8))
    await gql.ok(
        DEDUCT,
        {"input": {"memberId": "m", "orderId": "c-1", "orderAmount": 20_000, "points": 80, "idempotencyKey": "d"}},
        token=admin,
    )
    result = await refund(gql, admin, "m", "o-1", 10_000, "r")
    assert result["shortfall"] == 0 and result["member"]["points"]["available"] == -80
    again = await purchase(gql, admin, "m", "o-2", 10_000, paidAt=(clock.now() - timedelta(days=8)).isoformat())
    assert again["member"]["points"]["available"] == 20  # new points repay the debt first
    assert await audit_all(db) == []


async def test_referrer_earns_once_on_the_first_purchase(gql, admin, db):
    await gql.ok(REGISTER, {"i": {"id": "alice", "displayName": "Alice"}}, token=admin)
    await gql.ok(REGISTER, {"i": {"id": "bob", "displayName": "Bob", "referrerId": "alice"}}, token=admin)
    first = await purchase(gql, admin, "bob", "o-1", 1_000)
    assert [e["kind"] for e in first["entries"]] == ["PURCHASE", "REFERRAL"]
    await purchase(gql, admin, "bob", "o-2", 1_000)
    alice = await member(gql, admin, "alice")
    assert alice["points"]["pending"] == 100 and alice["points"]["lifetimeEarned"] == 100
    assert await audit_all(db) == []


async def test_concurrent_first_purchases_join_once(gql, admin, db):
    import asyncio

    from tests.support.points_helpers import PURCHASE as Q

    bodies = await asyncio.gather(
        *(
            gql(
                Q,
                {"input": {"memberId": "new", "orderId": f"o-{i}", "amount": 1_000, "idempotencyKey": f"k{i}"}},
                token=admin,
            )
            for i in range(10)
        )
    )
    assert [b.get("errors") for b in bodies] == [None] * 10
    assert sum(b["data"]["recordPurchase"]["joined"] for b in bodies) == 1
    seen = await member(gql, admin, "new")
    assert seen["lifetimeSpend"] == 10_000 and seen["points"]["pending"] == 100
    assert await audit_all(db) == []


async def test_member_lists_purchases_newest_first(gql, admin):
    for i in range(3):
        await purchase(gql, admin, "m", f"o-{i}", 1_000 * (i + 1))
    await refund(gql, admin, "m", "o-0", 500, "r")
    query = """
    query($after: String) { member(id: "m") { purchases(first: 2, after: $after) {
      edges { node { orderId amount refunded pointsEarned pointsTakenBack } } pageInfo { hasNextPage endCursor } } } }
    """
    page = (await gql.ok(query, token=admin))["member"]["purchases"]
    assert [e["node"]["orderId"] for e in page["edges"]] == ["o-2", "o-1"] and page["pageInfo"]["hasNextPage"]
    rest = (await gql.ok(query, {"after": page["pageInfo"]["endCursor"]}, token=admin))["member"]["purchases"]
    assert [e["node"] for e in rest["edges"]] == [
        {"orderId": "o-0", "amount": 1_000, "refunded": 500, "pointsEarned": 10, "pointsTakenBack": 5}
    ]
    assert (
        await gql.error_code(
            'query { member(id: "m") { purchases(after: "bm9wZQ==") { pageInfo { hasNextPage } } } }', token=admin
        )
        == "BAD_USER_INPUT"
    )


async def test_refund_returns_points_deducted_at_checkout_in_the_same_share(gql, admin, db, clock, services):
    """An order of ¥100 paid with ¥20 of points (2,000) and ¥80 cash: refunding half the cash
    returns 1,000 points, the rest returns the other 1,000, into the lots they came from."""
    from tests.support.ledger_helpers import earn

    await gql.ok(REGISTER, {"i": {"id": "r", "displayName": "R"}}, token=admin)
    await earn(services.ledger, "r", 1_500, source_id="older")
    clock.advance(timedelta(days=10))
    await earn(services.ledger, "r", 1_000, source_id="newer")
    deducted = await gql.ok(
        DEDUCT,
        {
            "input": {
                "memberId": "r",
                "orderId": "o-pts",
                "orderAmount": 10_000,
                "points": 2_000,
                "idempotencyKey": "d-1",
            }
        },
        token=token(Role.MEMBER, "r"),
    )
    assert deducted["deductPointsAtCheckout"]["member"]["points"]["available"] == 500
    await purchase(gql, admin, "r", "o-pts", 8_000)
    half = await refund(gql, admin, "r", "o-pts", 4_000, "rf-1")
    assert half["pointsReturned"] == 1_000
    rest = await refund(gql, admin, "r", "o-pts", 4_000, "rf-2")
    assert rest["pointsReturned"] == 1_000
    again = await refund(gql, admin, "r", "o-pts", 4_000, "rf-2")
    assert again["replayed"] is True and again["pointsReturned"] == 1_000
    seen = await member(gql, admin, "r")
    assert (seen["points"]["available"], seen["points"]["spent"]) == (2_500, 0)
    lots = {
        lot["source"]["id"]: lot["remaining"]
        async for lot in db.lots.find({"memberId": "r", "source.id": {"$in": ["older", "newer"]}})
    }
    assert lots == {"older": 1_500, "newer": 1_000}  # every point back in its own lot, original expiry kept
    assert await audit_all(db) == []
