"""Property: whatever a partner does, at whatever rates, a statement's money adds up exactly.

Random operations (accruals, burns, conversions both ways, reversals) are applied
through the partner service while an admin changes the money-per-point rate between
them. For every generated history the statement's money is the sum of each
operation's points at the rate recorded when it was made, funded − owed = −net holds
exactly in milli-fen and in fen, each side's fen is its milli-fen rounded once, and
the operations log reconciles with the ledger.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core.errors import DomainError
from gateway.domain.exchange import Direction, Fee
from gateway.domain.partner_commands import OperationType, PartnerCommand
from gateway.domain.partner_terms import PartnerTerms
from gateway.features.audit import audit_all
from tests.conftest import START
from tests.support.ledger_helpers import earn
from tests.support.partner_helpers import add_partner, linked_member

counter = itertools.count()
rates = st.integers(0, 9_999)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("accrue"), st.integers(1, 500)),
        st.tuples(st.just("burn"), st.integers(1, 500)),
        st.tuples(st.just("convert_in"), st.integers(10, 5_000)),
        st.tuples(st.just("convert_out"), st.integers(1, 300)),
        st.tuples(st.just("reverse"), st.integers(0, 30)),
        st.tuples(st.just("rate"), rates),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, first_rate=rates)
async def test_statement_money_adds_up_at_the_recorded_rates(services, db, clock, ops, first_rate) -> None:
    clock.set(START)
    partner_id = f"p{next(counter)}"
    member_id = f"m{next(counter)}"
    await add_partner(services, partner_id, fee=Fee(basis_points=150, fixed=1), milli_fen_per_point=first_rate)
    await linked_member(services, member_id, (partner_id, "ref"))
    await earn(services.ledger, member_id, 2_000)
    start = clock.now()
    rate = first_rate
    funded_milli = owed_milli = 0
    applied: list[tuple[str, int]] = []  # (event id, rate it was made at)
    for op in ops:
        clock.advance(timedelta(seconds=1))
        if op[0] == "rate":
            rate = op[1]
            await services.partners.update(partner_id, PartnerTerms(settlement_milli_fen_per_point=rate))
            continue
        event_id = f"e{next(counter)}"
        if op[0] == "accrue":
            command = PartnerCommand(OperationType.ACCRUE, event_id, "ref", points=op[1])
        elif op[0] == "burn":
            command = PartnerCommand(OperationType.BURN, event_id, "ref", points=op[1])
        elif op[0] == "convert_in":
            command = PartnerCommand(
                OperationType.CONVERT, event_id, "ref", points=op[1], direction=Direction.PARTNER_TO_COALITION
            )
        elif op[0] == "convert_out":
            command = PartnerCommand(
                OperationType.CONVERT, event_id, "ref", points=op[1], direction=Direction.COALITION_TO_PARTNER
            )
        else:
            if not applied:
                continue
            original, original_rate = applied[op[1] % len(applied)]
            command = PartnerCommand(OperationType.REVERSE, event_id, original_event_id=original)
        try:
            result, _ = await services.partner_operations.apply(partner_id, command)
        except DomainError:
            continue  # refused whole (insufficient points, already reversed, too small): nothing to price
        if command.type is OperationType.REVERSE:
            assert result["settlementMilliFenPerPoint"] == original_rate
            made_at = original_rate
        else:
            assert result["settlementMilliFenPerPoint"] == rate
            made_at = rate
            applied.append((event_id, rate))
        funded, owed = settlement_points(result)
        funded_milli += funded * made_at
        owed_milli += owed * made_at

    clock.advance(timedelta(seconds=1))
    statement = await services.partner_statements.statement(partner_id, start, clock.now())
    money = statement.money
    assert statement.reconciled
    assert money.funded_by_partner_milli_fen == funded_milli
    assert money.owed_to_partner_milli_fen == owed_milli
    assert money.net_milli_fen == owed_milli - funded_milli
    assert money.owed_to_partner_fen - money.funded_by_partner_fen == money.net_fen
    assert abs(money.funded_by_partner_fen * 1_000 - funded_milli) <= 500
    assert abs(money.owed_to_partner_fen * 1_000 - owed_milli) <= 500
    assert await audit_all(db) == []


def settlement_points(op: dict) -> tuple[int, int]:
    """What one operation adds to (funded by partner, owed to partner), from the operation as returned."""
    kind = op["type"]
    if kind == OperationType.ACCRUE:
        return op["points"], 0
    if kind == OperationType.BURN:
        return 0, op["points"]
    if kind == OperationType.CONVERT:
        if op["direction"] == Direction.PARTNER_TO_COALITION:
            return op["points"], 0
        return 0, op["points"] - op["fee"]
    reversed_kind = op["reverses"]["type"]
    if reversed_kind == OperationType.ACCRUE:
        return -op["points"], 0
    if reversed_kind == OperationType.BURN:
        return 0, -op["points"]
    if op["reverses"]["kind"] == "PARTNER_CONVERT_IN":
        return -op["points"], 0
    return 0, -(op["points"] - op["reversedFee"])
