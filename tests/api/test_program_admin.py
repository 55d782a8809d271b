"""Admins read and change the program; invalid programs are refused whole."""

from __future__ import annotations

from gateway.core.auth import Role
from tests.conftest import token
from tests.support.points_helpers import BEHAVIOUR, UPDATE_EARNING, UPDATE_PROGRAM, purchase

PROGRAM = """
query {
  program {
    name timezone pendingDays implicitJoinOnPurchase
    tiers { code threshold }
    earning { purchasePoints purchaseUnitFen memberDayMonthDays checkInStreakBonuses { days bonus }
              behaviours { event points } }
    expiry { mode days } deduction { pointsPerYuan maxPercentOfOrder } tierPolicy { basis validityDays }
  }
}
"""


async def test_program_is_admin_only(gql, admin):
    data = (await gql.ok(PROGRAM, token=admin))["program"]
    assert [t["code"] for t in data["tiers"]] == ["MEMBER", "SENIOR", "VIP", "SUPREME_VIP"]
    assert data["earning"]["memberDayMonthDays"] == [8] and data["pendingDays"] == 7
    assert {"event": "REVIEW", "points": 10} in data["earning"]["behaviours"]
    assert await gql.error_code(PROGRAM, token=token(Role.MEMBER, "m")) == "FORBIDDEN"
    assert await gql.error_code(PROGRAM) == "UNAUTHENTICATED"


async def test_changed_earning_rules_apply_to_the_next_purchase(gql, admin):
    await purchase(gql, admin, "m", "o-1", 10_000)
    changed = await gql.ok(
        UPDATE_EARNING,
        {"input": {"purchasePoints": 1, "purchaseUnitFen": 1_000, "behaviours": [{"event": "UNBOXING", "points": 7}]}},
        token=admin,
    )
    assert changed["updateEarningRules"]["earning"]["purchaseUnitFen"] == 1_000
    assert changed["updateEarningRules"]["earning"]["checkInPoints"] == 5  # untouched fields stay
    assert (await purchase(gql, admin, "m", "o-2", 10_000))["points"] == 10  # 1 point per ¥10
    done = await gql.ok(BEHAVIOUR, {"id": "m", "event": "UNBOXING", "key": "u"}, token=admin)
    assert done["recordBehaviour"]["points"] == 7
    assert await gql.error_code(BEHAVIOUR, {"id": "m", "event": "REVIEW", "key": "r"}, token=admin) == (
        "BAD_USER_INPUT"
    )


async def test_invalid_changes_are_refused_and_nothing_is_saved(gql, admin):
    bad_inputs = [
        (UPDATE_EARNING, {"purchaseUnitFen": 0}),
        (UPDATE_EARNING, {"memberDayWeekdays": [7]}),
        (UPDATE_EARNING, {"checkInStreakBonuses": [{"days": 1, "bonus": 5}]}),
        (UPDATE_EARNING, {"behaviours": [{"event": "bad event", "points": 5}]}),
        (UPDATE_EARNING, {"caps": [{"rule": "CHECK_IN", "daily": -1}]}),
        (UPDATE_PROGRAM, {"timezone": "Mars/Olympus"}),
        (UPDATE_PROGRAM, {"pendingDays": -1}),
        (UPDATE_PROGRAM, {"deduction": {"maxPercentOfOrder": 101}}),
    ]
    for query, changes in bad_inputs:
        assert await gql.error_code(query, {"input": changes}, token=admin) == "BAD_USER_INPUT", changes
    data = (await gql.ok(PROGRAM, token=admin))["program"]
    assert data["timezone"] == "Asia/Shanghai" and data["earning"]["purchaseUnitFen"] == 100
    member_token = token(Role.MEMBER, "m")
    assert await gql.error_code(UPDATE_PROGRAM, {"input": {"pendingDays": 1}}, token=member_token) == "FORBIDDEN"


async def test_update_program_settings(gql, admin):
    data = await gql.ok(
        UPDATE_PROGRAM,
        {
            "input": {
                "pendingDays": 14,
                "tierPolicy": {"basis": "GROWTH", "validityDays": 365},
                "expiry": {"mode": "ANNUAL_CLEARING"},
                "deduction": {"pointsPerYuan": 50},
            }
        },
        token=admin,
    )
    program = data["updateProgram"]
    assert program["pendingDays"] == 14 and program["tierPolicy"] == {"basis": "GROWTH", "validityDays": 365}
    assert program["expiry"] == {"mode": "ANNUAL_CLEARING", "days": 365}
    assert program["deduction"] == {"pointsPerYuan": 50, "maxPercentOfOrder": 50}
    cleared = await gql.ok(UPDATE_PROGRAM, {"input": {"tierPolicy": {"validityDays": 0}}}, token=admin)
    assert cleared["updateProgram"]["tierPolicy"] == {"basis": "GROWTH", "validityDays": None}
    bought = await purchase(gql, admin, "n", "o-1", 100)
    assert bought["member"]["points"]["pending"] == 1
    assert bought["availableAt"].startswith("2026-03-16")  # 14 days of return window now


async def test_later_fields_of_the_same_operation_see_the_changed_program(gql, admin):
    """Mutation fields run in order; the second must read the tiers the first just saved."""
    both = """
    mutation {
      updateEarningRules(input: {checkInPoints: 9}) { earning { checkInPoints } }
      registerMember(input: {id: "after", displayName: "After"}) { tier { code } nextTier { tier { code } } }
    }"""
    data = await gql.ok(both, token=admin)
    assert data["updateEarningRules"]["earning"]["checkInPoints"] == 9
    assert data["registerMember"]["tier"]["code"] == "MEMBER"
    assert data["registerMember"]["nextTier"]["tier"]["code"] == "SENIOR"
