"""Property: any sequence of earn / spend / refund / expire / clock moves keeps the books straight.

After every generated sequence the audit finds nothing (balances equal the sum of
the ledger, lots and open holds back the balances) and no balance is negative
unless the program allows refunds to leave debt. Checkout deductions are holds:
posted by a purchase (which may refuse them over the cap), voided by a cancel or
the timeout sweep, and what they held always ends up spent or back, never both.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core.auth import Principal, Role
from gateway.core.errors import DomainError
from gateway.domain.program import DEFAULT_PROGRAM
from gateway.features.audit import audit_all
from gateway.features.expiry import expire_points
from gateway.features.purchases import PurchaseRequest, RefundRequest
from gateway.store.program import save_program
from gateway.workers.holds import sweep_expired_holds
from tests.conftest import START

ADMIN = Principal(Role.ADMIN, "property")
EXPECTED_REFUSALS = {
    "INSUFFICIENT_POINTS",
    "BAD_USER_INPUT",
    "ALREADY_DEDUCTED",
    "ORDER_ALREADY_RECORDED",
    "DEDUCTION_OVER_CAP",
    "HOLD_EXPIRED",
    "HOLD_ALREADY_POSTED",
    "DEDUCTION_NOT_FOUND",
}
counter = itertools.count()

operations = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.integers(1, 60_000)),
        st.tuples(st.just("grant"), st.integers(1, 500)),
        st.tuples(st.just("adjust"), st.integers(1, 500)),
        st.tuples(st.just("hold"), st.integers(1, 800)),
        st.tuples(st.just("post"), st.integers(0, 20), st.integers(1, 60_000)),
        st.tuples(st.just("cancel"), st.integers(0, 20)),
        st.tuples(st.just("sweep"), st.integers(0, 90)),
        st.tuples(st.just("refund"), st.integers(0, 20), st.integers(1, 60_000)),
        st.tuples(st.just("expire")),
        st.tuples(st.just("advance"), st.integers(0, 400)),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, allow_negative=st.booleans(), pending_days=st.sampled_from([0, 7]))
async def test_any_sequence_keeps_ledger_and_balances_reconciled(
    services, db, clock, ops, allow_negative, pending_days
):
    clock.set(START)
    program = DEFAULT_PROGRAM.model_copy(
        update={"allow_negative_balance": allow_negative, "pending_days": pending_days}
    )
    await save_program(db, program)
    purchases, grants, deductions = services.purchases, services.grants, services.deductions
    member_id = f"p{next(counter)}"
    orders: list[str] = []
    checkouts: list[str] = []
    for op in ops:
        key = f"k{next(counter)}"
        try:
            if op[0] == "buy":
                order = f"o{len(orders)}"
                await purchases.record(ADMIN, PurchaseRequest(member_id, order, op[1]), key)
                orders.append(order)
            elif op[0] in ("grant", "adjust") and orders:
                points = op[1] if op[0] == "grant" else -op[1]
                await grants.grant(ADMIN, [member_id], points, "property", key)
            elif op[0] == "hold" and orders:
                checkouts.append(f"c{key}")
                await deductions.deduct(ADMIN, member_id, checkouts[-1], 10_000_000, op[1], key)
            elif op[0] == "post" and checkouts:
                checkout = checkouts[op[1] % len(checkouts)]
                await purchases.record(ADMIN, PurchaseRequest(member_id, checkout, op[2]), key)
                orders.append(checkout)
            elif op[0] == "cancel" and checkouts:
                await deductions.cancel(ADMIN, member_id, checkouts[op[1] % len(checkouts)])
            elif op[0] == "sweep":
                clock.advance(timedelta(minutes=op[1]))
                await sweep_expired_holds(services)
            elif op[0] == "refund" and orders:
                order = orders[op[1] % len(orders)]
                await purchases.refund(ADMIN, RefundRequest(member_id, order, op[2]), key)
            elif op[0] == "expire":
                await expire_points(db, services.ledger)
            elif op[0] == "advance":
                clock.advance(timedelta(days=op[1]))
        except DomainError as exc:
            assert exc.code in EXPECTED_REFUSALS, exc
    assert await audit_all(db) == []
    if orders:
        balances = (await services.members.get(member_id))["balances"]
        assert balances["pending"] >= 0 and balances["held"] >= 0
        assert balances["available"] >= 0 or allow_negative
    async for deduction in db["deductions"].find({"memberId": member_id}):
        hold = await db["holds"].find_one({"_id": deduction["holdId"]})
        assert hold["status"] == deduction["status"]
        settled = await db.ledger.count_documents({"holdId": hold["_id"]})
        assert settled == (0 if hold["status"] == "HELD" else 1)  # posted or voided once, never both
