"""Check-in, behaviours, grants, deduction at checkout and quota benefits through GraphQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from gateway.core.auth import Role
from gateway.core.metrics import TRANSACTION_RETRIES
from gateway.features.audit import audit_all
from tests.conftest import token
from tests.support.points_helpers import (
    BEHAVIOUR,
    CHECK_IN,
    DEDUCT,
    GRANT,
    UPDATE_EARNING,
    grant,
    member,
    purchase,
)

REGISTER = "mutation($i: RegisterMemberInput!) { registerMember(input: $i) { id } }"
CONSUME = """
mutation($id: ID!, $code: String!, $key: String!) {
  consumeBenefit(memberId: $id, code: $code, idempotencyKey: $key) { code used replayed }
}
"""


async def register(gql, admin, member_id):
    await gql.ok(REGISTER, {"i": {"id": member_id, "displayName": member_id}}, token=admin)


async def test_check_in_once_per_local_day_with_streak_bonus(gql, admin, db, clock):
    await register(gql, admin, "m")
    me = token(Role.MEMBER, "m")
    first = (await gql.ok(CHECK_IN, {"id": "m"}, token=me))["checkIn"]
    assert (first["streak"], first["points"]) == (1, 5)
    assert await gql.error_code(CHECK_IN, {"id": "m"}, token=me) == "ALREADY_CHECKED_IN"
    clock.advance(timedelta(hours=11, minutes=59))  # 23:59 Shanghai, same local day
    assert await gql.error_code(CHECK_IN, {"id": "m"}, token=me) == "ALREADY_CHECKED_IN"
    for day in range(2, 8):
        clock.advance(timedelta(days=1))
        result = (await gql.ok(CHECK_IN, {"id": "m"}, token=me))["checkIn"]
        assert result["streak"] == day
    assert (result["bonus"], result["points"]) == (20, 25)  # day 7: 5 + 20
    clock.advance(timedelta(days=2))  # a day missed: the streak restarts
    assert (await gql.ok(CHECK_IN, {"id": "m"}, token=me))["checkIn"]["streak"] == 1
    seen = await member(gql, admin, "m")
    assert seen["points"]["available"] == 5 * 8 + 20 and seen["growthValue"] == 8
    assert await gql.error_code(CHECK_IN, {"id": "m"}, token=token(Role.MEMBER, "other")) == "FORBIDDEN"
    assert await audit_all(db) == []


async def test_check_in_replay_with_a_key_returns_the_original(gql, admin):
    await register(gql, admin, "m")
    me = token(Role.MEMBER, "m")
    first = (await gql.ok(CHECK_IN, {"id": "m", "key": "ci-1"}, token=me))["checkIn"]
    again = (await gql.ok(CHECK_IN, {"id": "m", "key": "ci-1"}, token=me))["checkIn"]
    assert again["replayed"] is True and again["points"] == first["points"]
    assert again["member"]["points"]["available"] == 5


async def test_concurrent_check_ins_pay_once(gql, admin, db):
    await register(gql, admin, "m")
    me = token(Role.MEMBER, "m")
    bodies = await asyncio.gather(*(gql(CHECK_IN, {"id": "m"}, token=me) for _ in range(10)))
    assert sum("errors" not in b for b in bodies) == 1
    assert (await member(gql, admin, "m"))["points"]["available"] == 5


async def test_behaviours_from_config_with_daily_cap(gql, admin, db):
    await register(gql, admin, "m")
    await gql.ok(
        UPDATE_EARNING,
        {"input": {"caps": [{"rule": "REVIEW", "daily": 25}], "behaviours": [{"event": "REVIEW", "points": 10}]}},
        token=admin,
    )
    results = [
        (await gql.ok(BEHAVIOUR, {"id": "m", "event": "REVIEW", "key": f"r{i}"}, token=admin))["recordBehaviour"]
        for i in range(3)
    ]
    assert [(r["points"], r["capped"]) for r in results] == [(10, False), (10, False), (5, True)]
    code = await gql.error_code(BEHAVIOUR, {"id": "m", "event": "REVIEW", "key": "r4"}, token=admin)
    assert code == "EARN_CAP_REACHED"
    assert await gql.error_code(BEHAVIOUR, {"id": "m", "event": "DANCE", "key": "x"}, token=admin) == "BAD_USER_INPUT"
    me = token(Role.MEMBER, "m")
    assert await gql.error_code(BEHAVIOUR, {"id": "m", "event": "REVIEW", "key": "y"}, token=me) == "FORBIDDEN"
    assert (await member(gql, admin, "m"))["points"]["available"] == 25
    assert await audit_all(db) == []


async def test_monthly_purchase_cap_limits_points_not_the_purchase(gql, admin, db, clock):
    await gql.ok(UPDATE_EARNING, {"input": {"caps": [{"rule": "PURCHASE", "monthly": 150}]}}, token=admin)
    first = await purchase(gql, admin, "m", "o-1", 10_000)
    second = await purchase(gql, admin, "m", "o-2", 10_000)
    assert (first["points"], second["points"], second["capped"]) == (100, 50, True)
    assert second["member"]["lifetimeSpend"] == 20_000
    clock.advance(timedelta(days=31))
    assert (await purchase(gql, admin, "m", "o-3", 10_000))["points"] == 100


async def test_grants_and_adjustments_are_admin_only_and_all_or_nothing(gql, admin, db):
    for member_id in ("a", "b"):
        await register(gql, admin, member_id)
    both = await gql.ok(
        GRANT,
        {"input": {"memberIds": ["a", "b"], "points": 300, "reason": "Spring gift", "idempotencyKey": "g1"}},
        token=admin,
    )
    assert [m["points"]["available"] for m in both["grantPoints"]["members"]] == [300, 300]
    replay = await gql.ok(
        GRANT,
        {"input": {"memberIds": ["b", "a"], "points": 300, "reason": "Spring gift", "idempotencyKey": "g1"}},
        token=admin,
    )
    assert replay["grantPoints"]["replayed"] is True
    assert [m["points"]["available"] for m in replay["grantPoints"]["members"]] == [300, 300]
    await grant(gql, admin, "a", -100, "adj-1", reason="Correction")
    code = await gql.error_code(
        GRANT,
        {"input": {"memberIds": ["a", "b"], "points": -250, "reason": "x", "idempotencyKey": "adj-2"}},
        token=admin,
    )
    assert code == "INSUFFICIENT_POINTS"  # a has 200: nobody is adjusted
    assert (await member(gql, admin, "b"))["points"]["available"] == 300
    bad = {"input": {"memberId": "a", "points": 0, "reason": "x", "idempotencyKey": "g3"}}
    assert await gql.error_code(GRANT, bad, token=admin) == "BAD_USER_INPUT"
    no_reason = {"input": {"memberId": "a", "points": 5, "reason": " ", "idempotencyKey": "g4"}}
    assert await gql.error_code(GRANT, no_reason, token=admin) == "BAD_USER_INPUT"
    ok = {"input": {"memberId": "a", "points": 5, "reason": "x", "idempotencyKey": "g5"}}
    assert await gql.error_code(GRANT, ok, token=token(Role.MEMBER, "a")) == "FORBIDDEN"
    missing = {"input": {"memberId": "nobody", "points": 5, "reason": "x", "idempotencyKey": "g6"}}
    assert await gql.error_code(GRANT, missing, token=admin) == "MEMBER_NOT_FOUND"
    assert await audit_all(db) == []


def deduct_vars(order_id, points, amount=100_000, member_id="m", key=None):
    return {
        "input": {
            "memberId": member_id,
            "orderId": order_id,
            "orderAmount": amount,
            "points": points,
            "idempotencyKey": key or f"d-{order_id}",
        }
    }


async def test_deduction_value_cap_and_replay(gql, admin, db):
    await register(gql, admin, "m")
    await grant(gql, admin, "m", 10_000, "g")
    me = token(Role.MEMBER, "m")
    result = (await gql.ok(DEDUCT, deduct_vars("c-1", 2_500, amount=9_000), token=me))["deductPointsAtCheckout"]
    assert (result["points"], result["valueFen"]) == (2_500, 2_500)  # 100 points = ¥1
    over = await gql.error_code(DEDUCT, deduct_vars("c-2", 4_501, amount=9_000), token=me)
    assert over == "BAD_USER_INPUT"  # at most 50% of ¥90
    again = (await gql.ok(DEDUCT, deduct_vars("c-1", 2_500, amount=9_000), token=me))["deductPointsAtCheckout"]
    assert again["replayed"] is True and again["member"]["points"]["available"] == 7_500
    other_key = deduct_vars("c-1", 100, amount=9_000, key="another")
    assert await gql.error_code(DEDUCT, other_key, token=me) == "ALREADY_DEDUCTED"
    conflict = deduct_vars("c-1", 100, amount=9_000)
    assert await gql.error_code(DEDUCT, conflict, token=me) == "IDEMPOTENCY_CONFLICT"
    assert await gql.error_code(DEDUCT, deduct_vars("c-9", 10), token=token(Role.MEMBER, "x")) == "FORBIDDEN"


async def test_hundred_concurrent_deductions_through_graphql(gql, admin, db):
    await register(gql, admin, "m")
    await grant(gql, admin, "m", 1_000, "g")
    me = token(Role.MEMBER, "m")
    bodies = await asyncio.gather(*(gql(DEDUCT, deduct_vars(f"c-{i}", 15), token=me) for i in range(100)))
    ok = [b for b in bodies if "errors" not in b]
    refused = [b["errors"][0]["extensions"]["code"] for b in bodies if "errors" in b]
    assert len(ok) == 66 and refused == ["INSUFFICIENT_POINTS"] * 34
    balances = (await db.members.find_one({"_id": "m"}))["balances"]
    assert (balances["available"], balances["held"], balances["spent"]) == (10, 990, 0)
    assert await audit_all(db) == []


async def test_a_crowd_on_one_member_drains_in_about_one_retry_each(gql, admin, db):
    """Losers of a write conflict retry one at a time: fifty writers on one member cost about
    fifty retries, not the storm of conflicting retries that ran into the deadline under load."""
    await register(gql, admin, "crowd")
    await grant(gql, admin, "crowd", 1_000, "g")
    me = token(Role.MEMBER, "crowd")
    before = TRANSACTION_RETRIES._value.get()
    bodies = await asyncio.gather(
        *(gql(DEDUCT, deduct_vars(f"k-{i}", 10, member_id="crowd"), token=me) for i in range(50))
    )
    assert [b["errors"] for b in bodies if "errors" in b] == []
    retries = TRANSACTION_RETRIES._value.get() - before
    assert retries < 50 * 2, retries
    assert await audit_all(db) == []


async def test_quota_benefits_per_period(gql, admin, db, clock):
    await purchase(gql, admin, "vip", "o-1", 500_000)
    me = token(Role.MEMBER, "vip")
    used = (await gql.ok(CONSUME, {"id": "vip", "code": "FREE_SHIPPING", "key": "s1"}, token=me))["consumeBenefit"]
    assert used["used"] == 1
    assert (await gql.ok(CONSUME, {"id": "vip", "code": "FREE_SHIPPING", "key": "s1"}, token=me))["consumeBenefit"][
        "replayed"
    ]
    code = await gql.error_code(CONSUME, {"id": "vip", "code": "FREE_SHIPPING", "key": "s2"}, token=me)
    assert code == "QUOTA_EXHAUSTED"
    await gql.ok(CONSUME, {"id": "vip", "code": "NEW_PRODUCT_DISCOUNT", "key": "n1"}, token=me)
    seen = {b["benefit"]["code"]: b for b in (await member(gql, admin, "vip"))["benefits"]}
    assert (seen["FREE_SHIPPING"]["used"], seen["FREE_SHIPPING"]["remaining"]) == (1, 0)
    assert seen["FREE_SHIPPING"]["periodStart"] == "2026-03-01"
    assert seen["NEW_PRODUCT_DISCOUNT"]["periodEnd"] == "2026-03-09"
    clock.advance(timedelta(days=7))  # a new week, same month
    await gql.ok(CONSUME, {"id": "vip", "code": "NEW_PRODUCT_DISCOUNT", "key": "n2"}, token=me)
    assert await gql.error_code(CONSUME, {"id": "vip", "code": "FREE_SHIPPING", "key": "s3"}, token=me) == (
        "QUOTA_EXHAUSTED"
    )
    clock.advance(timedelta(days=30))  # April
    await gql.ok(CONSUME, {"id": "vip", "code": "FREE_SHIPPING", "key": "s4"}, token=me)
    await purchase(gql, admin, "small", "o-1", 100)
    code = await gql.error_code(CONSUME, {"id": "small", "code": "FREE_SHIPPING", "key": "x"}, token=admin)
    assert code == "BENEFIT_NOT_AVAILABLE"
    assert (
        await gql.error_code(
            CONSUME, {"id": "vip", "code": "FREE_SHIPPING", "key": "y"}, token=token(Role.MEMBER, "small")
        )
        == "FORBIDDEN"
    )


async def test_later_fields_of_one_operation_see_the_points_an_earlier_field_moved(gql, admin, db):
    await register(gql, admin, "seq")
    both = """
    mutation {
      grantPoints(input: {memberId: "seq", points: 30, reason: "x", idempotencyKey: "g-seq"}) {
        members { points { available } }
      }
      checkIn(memberId: "seq", idempotencyKey: "c-seq") { member { points { available } } }
    }"""
    data = await gql.ok(both, token=admin)
    assert data["grantPoints"]["members"][0]["points"]["available"] == 30  # now in the request's cache
    assert data["checkIn"]["member"]["points"]["available"] == 35  # read past it, after the check-in
