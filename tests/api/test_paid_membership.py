"""Paid membership has a term (issue 11 item 9): the multiplier stops when it ends; renewal extends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.core.auth import Role
from gateway.features.audit import audit_all
from tests.conftest import token
from tests.support.points_helpers import REGISTER, purchase

TERM = "paidMember paidMembership { plan startsAt endsAt active }"
RECORD = f"""
mutation($id: ID!, $plan: PaidMembershipPlan!, $key: String!) {{
  recordPaidMembership(memberId: $id, plan: $plan, idempotencyKey: $key) {{ {TERM} }}
}}"""
END = f'mutation($id: ID!) {{ endPaidMembership(memberId: $id, reason: "refunded") {{ {TERM} }} }}'
READ = f"query($id: ID!) {{ member(id: $id) {{ {TERM} }} }}"


async def record(gql, admin, member_id, plan, key):
    return (await gql.ok(RECORD, {"id": member_id, "plan": plan, "key": key}, token=admin))["recordPaidMembership"]


async def test_the_multiplier_stops_when_the_term_ends(gql, admin, db, clock):
    await gql.ok(REGISTER, {"i": {"id": "pm", "displayName": "P"}}, token=admin)
    term = await record(gql, admin, "pm", "MONTHLY", "t1")
    assert term["paidMember"] is True and term["paidMembership"]["plan"] == "MONTHLY"
    assert term["paidMembership"]["startsAt"] == "2026-03-02T04:00:00+00:00"
    assert term["paidMembership"]["endsAt"] == "2026-04-02T04:00:00+00:00"
    inside = await purchase(gql, admin, "pm", "o-1", 10_000)
    assert inside["points"] == 150
    clock.set(datetime(2026, 4, 2, 4, 0, tzinfo=UTC))
    seen = (await gql.ok(READ, {"id": "pm"}, token=admin))["member"]
    assert seen["paidMember"] is False and seen["paidMembership"]["active"] is False
    after = await purchase(gql, admin, "pm", "o-2", 10_000)
    assert after["points"] == 100
    # a late-recorded order paid inside the term still earns the paid multiplier
    late = await purchase(gql, admin, "pm", "o-3", 10_000, paidAt="2026-04-01T10:00:00+00:00")
    assert late["points"] == 150
    assert await audit_all(db) == []


async def test_renewal_extends_a_running_term_and_restarts_a_lapsed_one(gql, admin, clock):
    await gql.ok(REGISTER, {"i": {"id": "pm", "displayName": "P"}}, token=admin)
    await record(gql, admin, "pm", "MONTHLY", "t1")
    clock.advance(timedelta(days=10))
    renewed = await record(gql, admin, "pm", "QUARTERLY", "t2")
    assert renewed["paidMembership"]["startsAt"] == "2026-03-02T04:00:00+00:00"
    assert renewed["paidMembership"]["endsAt"] == "2026-07-02T04:00:00+00:00"  # 1 + 3 months, no day lost
    replay = await record(gql, admin, "pm", "QUARTERLY", "t2")
    assert replay["paidMembership"]["endsAt"] == renewed["paidMembership"]["endsAt"]  # a retry extends nothing
    clock.set(datetime(2026, 8, 1, 4, 0, tzinfo=UTC))
    fresh = await record(gql, admin, "pm", "YEARLY", "t3")
    assert fresh["paidMembership"]["startsAt"] == "2026-08-01T04:00:00+00:00"
    assert fresh["paidMembership"]["endsAt"] == "2027-08-01T04:00:00+00:00"


async def test_ending_early_and_who_may_record(gql, admin):
    await gql.ok(REGISTER, {"i": {"id": "pm", "displayName": "P"}}, token=admin)
    vars_ = {"id": "pm", "plan": "YEARLY", "key": "t1"}
    assert await gql.error_code(RECORD, vars_, token=token(Role.MEMBER, "pm")) == "FORBIDDEN"
    assert await gql.error_code(RECORD, vars_) == "UNAUTHENTICATED"
    assert await gql.error_code(RECORD, {**vars_, "id": "ghost"}, token=admin) == "MEMBER_NOT_FOUND"
    assert await gql.error_code(END, {"id": "pm"}, token=admin) == "NOT_A_PAID_MEMBER"
    await record(gql, admin, "pm", "YEARLY", "t1")
    ended = (await gql.ok(END, {"id": "pm"}, token=admin))["endPaidMembership"]
    assert ended["paidMember"] is False and ended["paidMembership"]["endsAt"] == "2026-03-02T04:00:00+00:00"
    assert await gql.error_code(END, {"id": "pm"}, token=admin) == "NOT_A_PAID_MEMBER"
    assert (await gql.ok(READ, {"id": "pm"}, token=token(Role.MEMBER, "pm")))["member"]["paidMember"] is False
