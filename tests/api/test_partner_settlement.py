"""Partner settlement money and reversal windows through GraphQL (issue 11 items 5, 6, 10)."""

from __future__ import annotations

from datetime import timedelta

from gateway.features.audit import audit_all
from tests.conftest import GraphQLClient
from tests.support.ledger_helpers import earn
from tests.support.partner_helpers import SETUP, add_partner, linked_member

ACCRUE = """
mutation($input: PartnerAccrueInput!) {
  partnerAccrue(input: $input) { replayed operation { eventId points settlementMilliFenPerPoint } }
}"""
BURN = """
mutation($input: PartnerBurnInput!) {
  partnerBurn(input: $input) { operation { eventId points settlementMilliFenPerPoint } }
}"""
REVERSE = """
mutation($input: PartnerReverseInput!) {
  partnerReverse(input: $input) { operation { eventId points reversesEventId settlementMilliFenPerPoint } }
}"""
STATEMENT = """
query($id: ID!, $from: DateTime!, $to: DateTime!) {
  partnerStatement(partnerId: $id, from: $from, to: $to) {
    fundedByPartnerPoints owedToPartnerPoints netPoints
    fundedByPartnerMilliFen owedToPartnerMilliFen netMilliFen
    fundedByPartnerFen owedToPartnerFen netFen reconciled
    byRate { milliFenPerPoint fundedByPartnerPoints owedToPartnerPoints }
  }
}"""
ACCRUE_PLAIN = """
mutation($input: PartnerAccrueInput!) { partnerAccrue(input: $input) { operation { eventId points } } }"""
BURN_PLAIN = """
mutation($input: PartnerBurnInput!) { partnerBurn(input: $input) { operation { eventId points } } }"""
MONEY = """
query($id: ID!, $from: DateTime!, $to: DateTime!) {
  partnerStatement(partnerId: $id, from: $from, to: $to) {
    fundedByPartnerMilliFen owedToPartnerMilliFen netMilliFen fundedByPartnerFen owedToPartnerFen netFen
  }
}"""
SET_RATE = 'mutation($v: Int!) { updatePartner(id: "coffee", input: {settlementMilliFenPerPoint: $v}) { id } }'


async def statement(gql: GraphQLClient, admin: str, start, end) -> dict:
    variables = {"id": "coffee", "from": start.isoformat(), "to": end.isoformat()}
    return (await gql.ok(STATEMENT, variables, token=admin))["partnerStatement"]


async def test_a_rate_change_does_not_reprice_operations_already_made(
    gql: GraphQLClient, services, db, admin: str
) -> None:
    coffee = await add_partner(services, "coffee", milli_fen_per_point=1_000)
    await linked_member(services, "ann", ("coffee", "C-1"))
    await earn(services.ledger, "ann", 200)
    start = services.clock.now()
    key = coffee.api_key
    first = await gql.ok(ACCRUE, {"input": {"eventId": "a1", "memberRef": "C-1", "points": 100}}, api_key=key)
    assert first["partnerAccrue"]["operation"]["settlementMilliFenPerPoint"] == 1_000
    services.clock.advance(timedelta(minutes=5))
    closed = services.clock.now()
    before = await statement(gql, admin, start, closed)
    assert before["fundedByPartnerMilliFen"] == 100_000

    await gql.ok(SET_RATE, {"v": 2_000}, token=admin)
    assert await statement(gql, admin, start, closed) == before  # the closed period is not re-priced

    await gql.ok(ACCRUE, {"input": {"eventId": "a2", "memberRef": "C-1", "points": 10}}, api_key=key)
    burn = await gql.ok(BURN, {"input": {"eventId": "b1", "memberRef": "C-1", "points": 30}}, api_key=key)
    assert burn["partnerBurn"]["operation"]["settlementMilliFenPerPoint"] == 2_000
    # Reversing an operation from before the change gives back what it was worth then.
    undo = await gql.ok(REVERSE, {"input": {"eventId": "r1", "originalEventId": "a1"}}, api_key=key)
    assert undo["partnerReverse"]["operation"]["settlementMilliFenPerPoint"] == 1_000
    services.clock.advance(timedelta(minutes=5))
    st = await statement(gql, admin, start, services.clock.now())
    assert st["fundedByPartnerPoints"] == 10 and st["owedToPartnerPoints"] == 30
    assert st["fundedByPartnerMilliFen"] == 100 * 1_000 + 10 * 2_000 - 100 * 1_000
    assert st["owedToPartnerMilliFen"] == 30 * 2_000
    assert st["netMilliFen"] == 60_000 - 20_000
    assert st["byRate"] == [
        {"milliFenPerPoint": 1_000, "fundedByPartnerPoints": 0, "owedToPartnerPoints": 0},
        {"milliFenPerPoint": 2_000, "fundedByPartnerPoints": 10, "owedToPartnerPoints": 30},
    ]
    assert st["reconciled"] is True
    assert await audit_all(db) == []


async def test_operations_recorded_before_rates_were_recorded_keep_the_rate_they_had(
    gql: GraphQLClient, services, db, admin: str
) -> None:
    coffee = await add_partner(services, "coffee", milli_fen_per_point=1_500)
    await linked_member(services, "ann", ("coffee", "C-1"))
    start = services.clock.now()
    await gql.ok(ACCRUE, {"input": {"eventId": "old", "memberRef": "C-1", "points": 40}}, api_key=coffee.api_key)
    # As written by a gateway that did not record the rate yet.
    unset = {"$unset": {"settlementMilliFenPerPoint": ""}}
    await db.ledger.update_many({"source.partnerId": "coffee"}, unset)
    await db["partner_operations"].update_many({"partnerId": "coffee"}, unset)
    await db["partners"].update_one({"_id": "coffee"}, {"$unset": {"legacyMilliFenPerPoint": ""}})
    services.clock.advance(timedelta(minutes=1))
    end = services.clock.now()
    assert (await statement(gql, admin, start, end))["fundedByPartnerMilliFen"] == 60_000

    await gql.ok(SET_RATE, {"v": 9_000}, token=admin)
    await gql.ok(SET_RATE, {"v": 4_000}, token=admin)
    st = await statement(gql, admin, start, end)
    assert st["fundedByPartnerMilliFen"] == 60_000 and st["reconciled"] is True


async def test_statement_fen_add_up_exactly(gql: GraphQLClient, services, db, admin: str) -> None:
    coffee = await add_partner(services, "coffee", milli_fen_per_point=1_300)
    await linked_member(services, "ann", ("coffee", "C-1"))
    await earn(services.ledger, "ann", 10)
    start = services.clock.now()
    await gql.ok(ACCRUE_PLAIN, {"input": {"eventId": "a1", "memberRef": "C-1", "points": 1}}, api_key=coffee.api_key)
    await gql.ok(BURN_PLAIN, {"input": {"eventId": "b1", "memberRef": "C-1", "points": 2}}, api_key=coffee.api_key)
    services.clock.advance(timedelta(minutes=1))
    variables = {"id": "coffee", "from": start.isoformat(), "to": services.clock.now().isoformat()}
    st = (await gql.ok(MONEY, variables, token=admin))["partnerStatement"]
    assert (st["fundedByPartnerMilliFen"], st["owedToPartnerMilliFen"], st["netMilliFen"]) == (1_300, 2_600, 1_300)
    # Each side is rounded once (1.3 → 1, 2.6 → 3); net is their difference, not a third rounding (1.3 → 1).
    assert (st["fundedByPartnerFen"], st["owedToPartnerFen"], st["netFen"]) == (1, 3, 2)
    assert st["owedToPartnerFen"] - st["fundedByPartnerFen"] == st["netFen"]


REVERSE_ONLY = """
mutation($input: PartnerReverseInput!) { partnerReverse(input: $input) { operation { eventId points } } }"""


async def test_reversals_close_after_the_partners_window(gql: GraphQLClient, services, db, admin: str) -> None:
    coffee = await add_partner(services, "coffee")
    await linked_member(services, "ann", ("coffee", "C-1"))
    key = coffee.api_key
    shown = await gql.ok('{ partner(id: "coffee") { reversalWindowDays } }', token=admin)
    assert shown["partner"]["reversalWindowDays"] == 90
    for event in ("a1", "a2", "a3"):
        await gql.ok(ACCRUE_PLAIN, {"input": {"eventId": event, "memberRef": "C-1", "points": 10}}, api_key=key)

    services.clock.advance(timedelta(days=90))  # the last instant inside the window
    await gql.ok(REVERSE_ONLY, {"input": {"eventId": "r1", "originalEventId": "a1"}}, api_key=key)
    services.clock.advance(timedelta(seconds=1))
    late = {"input": {"eventId": "r2", "originalEventId": "a2"}}
    body = await gql(REVERSE_ONLY, late, api_key=key)
    error = body["errors"][0]["extensions"]
    assert error["code"] == "REVERSAL_WINDOW_CLOSED" and error["windowDays"] == 90
    assert await db["partner_operations"].count_documents({"_id": "coffee:r2"}) == 0

    widened = await gql.ok(
        'mutation { updatePartner(id: "coffee", input: {reversalWindowDays: 120}) { reversalWindowDays } }',
        token=admin,
    )
    assert widened["updatePartner"]["reversalWindowDays"] == 120
    await gql.ok(REVERSE_ONLY, late, api_key=key)
    bad = 'mutation { updatePartner(id: "coffee", input: {reversalWindowDays: -1}) { id } }'
    assert await gql.error_code(bad, token=admin) == "BAD_USER_INPUT"
    assert (await services.members.get("ann"))["balances"]["available"] == 10
    assert await audit_all(db) == []


async def test_a_partner_may_reverse_operations_from_before_an_unlink_inside_the_window(
    gql: GraphQLClient, services, db, admin: str
) -> None:
    coffee = await add_partner(services, "coffee")
    await linked_member(services, "ann", ("coffee", "C-1"))
    key = coffee.api_key
    await gql.ok(ACCRUE_PLAIN, {"input": {"eventId": "a1", "memberRef": "C-1", "points": 10}}, api_key=key)
    await gql.ok(ACCRUE_PLAIN, {"input": {"eventId": "a2", "memberRef": "C-1", "points": 20}}, api_key=key)
    await services.partner_links.unlink(SETUP, "ann", "coffee")
    assert await gql.error_code(
        ACCRUE_PLAIN, {"input": {"eventId": "a3", "memberRef": "C-1", "points": 5}}, api_key=key
    ) == ("MEMBER_NOT_LINKED")
    services.clock.advance(timedelta(days=30))
    undone = await gql.ok(REVERSE_ONLY, {"input": {"eventId": "r1", "originalEventId": "a1"}}, api_key=key)
    assert undone["partnerReverse"]["operation"]["points"] == 10
    services.clock.advance(timedelta(days=61))
    late = {"input": {"eventId": "r2", "originalEventId": "a2"}}
    assert await gql.error_code(REVERSE_ONLY, late, api_key=key) == "REVERSAL_WINDOW_CLOSED"
    assert (await services.members.get("ann"))["balances"]["available"] == 20
    assert await audit_all(db) == []
