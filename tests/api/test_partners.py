"""Coalition partners through GraphQL on the real MongoDB: config, links, operations, settlement."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from gateway.core.auth import Role, hash_api_key
from gateway.domain.exchange import Fee
from gateway.domain.partner_commands import OperationType, PartnerCommand
from gateway.domain.partner_terms import Limits
from gateway.features.audit import audit_all
from tests.conftest import GraphQLClient, token
from tests.support.ledger_helpers import add_member, earn
from tests.support.partner_helpers import add_partner, linked_member

CREATE = """
mutation($input: CreatePartnerInput!) {
  createPartner(input: $input) {
    apiKey signingSecret
    partner { id name currencyName rate { partnerPoints coalitionPoints } fee { basisPoints fixedPoints }
              limits { dailyBurnPoints } settlementMilliFenPerPoint active }
  }
}"""
ACCRUE = """
mutation($input: PartnerAccrueInput!) {
  partnerAccrue(input: $input) { replayed operation { eventId type memberId points amount availableAfter } }
}"""
BURN = """
mutation($input: PartnerBurnInput!) {
  partnerBurn(input: $input) { replayed operation { eventId points availableAfter } }
}"""
REVERSE = """
mutation($input: PartnerReverseInput!) {
  partnerReverse(input: $input) { replayed operation { eventId type points shortfall reversesEventId availableAfter } }
}"""
CONVERT = """
mutation($input: ConvertPartnerPointsInput!) {
  convertPartnerPoints(input: $input) {
    replayed operation { points partnerPoints fee remainder direction availableAfter }
  }
}"""
STATEMENT = """
query($id: ID!, $from: DateTime!, $to: DateTime!) {
  partnerStatement(partnerId: $id, from: $from, to: $to) {
    accruedPoints accrualReversedPoints burnedPoints burnReversedPoints convertedInPoints convertedOutPoints
    conversionReversedInPoints conversionReversedOutPoints feePoints
    fundedByPartnerPoints owedToPartnerPoints netPoints
    fundedByPartnerMilliFen owedToPartnerMilliFen netMilliFen netFen operationCount reconciled
    operations(first: 3) { edges { node { eventId type points } } pageInfo { hasNextPage endCursor } }
  }
}"""


async def available(services, member_id: str) -> int:
    return (await services.members.get(member_id))["balances"]["available"]


async def test_admin_creates_a_partner_and_the_key_is_shown_once(gql: GraphQLClient, admin: str, db) -> None:
    data = await gql.ok(
        CREATE,
        {
            "input": {
                "id": "coffee",
                "name": "Coffee Co",
                "currencyName": "Beans",
                "rate": {"partnerPoints": 10, "coalitionPoints": 1},
                "feeBasisPoints": 100,
                "limits": {"dailyBurnPoints": 5000},
                "settlementMilliFenPerPoint": 1500,
            }
        },
        token=admin,
    )
    created = data["createPartner"]
    assert created["partner"] == {
        "id": "coffee",
        "name": "Coffee Co",
        "currencyName": "Beans",
        "rate": {"partnerPoints": 10, "coalitionPoints": 1},
        "fee": {"basisPoints": 100, "fixedPoints": 0},
        "limits": {"dailyBurnPoints": 5000},
        "settlementMilliFenPerPoint": 1500,
        "active": True,
    }
    stored = await db["partners"].find_one({"_id": "coffee"})
    assert stored["apiKeyHash"] == hash_api_key(created["apiKey"])
    assert created["apiKey"] not in str(stored)
    key = created["apiKey"]
    assert (await gql.ok('{ partner(id: "coffee") { name } }', api_key=key))["partner"]["name"] == "Coffee Co"
    assert await gql.error_code('{ partner(id: "other") { name } }', api_key=key) == "FORBIDDEN"
    again = {"id": "x", "name": "X", "currencyName": "X", "rate": {"partnerPoints": 1, "coalitionPoints": 1}}
    assert await gql.error_code(CREATE, {"input": again}, api_key=key) == "FORBIDDEN"
    assert await gql.error_code(CREATE, {"input": {**again, "id": "coffee"}}, token=admin) == "ALREADY_EXISTS"

    rotated = await gql.ok('mutation { rotatePartnerKey(id: "coffee") { apiKey signingSecret } }', token=admin)
    assert rotated["rotatePartnerKey"]["signingSecret"] != created["signingSecret"]
    assert await gql.error_code('{ partner(id: "coffee") { name } }', api_key=key) == "UNAUTHENTICATED"
    new_key = rotated["rotatePartnerKey"]["apiKey"]
    assert (await gql.ok('{ partner(id: "coffee") { id } }', api_key=new_key))["partner"]["id"] == "coffee"

    updated = await gql.ok(
        """mutation { updatePartner(id: "coffee", input: {feeFixedPoints: 2, active: false,
             rate: {partnerPoints: 5, coalitionPoints: 1}})
           { active fee { basisPoints fixedPoints } rate { partnerPoints } } }""",
        token=admin,
    )
    assert updated["updatePartner"] == {
        "active": False,
        "fee": {"basisPoints": 100, "fixedPoints": 2},
        "rate": {"partnerPoints": 5},
    }
    assert await gql.error_code('{ partner(id: "coffee") { id } }', api_key=new_key) == "UNAUTHENTICATED"
    assert await gql.error_code('mutation { rotatePartnerKey(id: "nope") { apiKey } }', token=admin) == (
        "PARTNER_NOT_FOUND"
    )


async def test_member_links_consent_and_a_partner_acts_only_on_linked_members(
    gql: GraphQLClient, services, admin: str
) -> None:
    coffee = await add_partner(services, "coffee")
    await add_member(services, "ann")
    await add_member(services, "bob")
    link = "mutation($m: ID!, $p: ID!, $r: String!) { linkPartnerAccount(memberId: $m, partnerId: $p, partnerMemberRef: $r) { partnerId partnerMemberRef } }"  # noqa: E501
    create_code = "mutation { createPartnerLinkCode(memberId: \"ann\", partnerId: \"coffee\") { code } }"
    redeem = "mutation($c: String!) { redeemPartnerLinkCode(code: $c, partnerMemberRef: \"C-1\") { partnerId } }"
    ann = token(Role.MEMBER, "ann")
    assert await gql.error_code(link, {"m": "ann", "p": "coffee", "r": "C-1"}, token=ann) == "FORBIDDEN"
    code = (await gql.ok(create_code, token=ann))["createPartnerLinkCode"]["code"]
    await gql.ok(redeem, {"c": code}, api_key=coffee.api_key)
    assert await gql.error_code(link, {"m": "bob", "p": "coffee", "r": "C-1"}, token=admin) == "PARTNER_REF_TAKEN"
    accounts = await gql.ok('{ member(id: "ann") { partnerAccounts { partnerId partnerMemberRef } } }', token=ann)
    assert accounts["member"]["partnerAccounts"] == [{"partnerId": "coffee", "partnerMemberRef": "C-1"}]

    by_ref = await gql.ok(
        ACCRUE, {"input": {"eventId": "e1", "memberRef": "C-1", "points": 30}}, api_key=coffee.api_key
    )
    assert by_ref["partnerAccrue"]["operation"]["memberId"] == "ann"
    by_id = await gql.ok(
        ACCRUE, {"input": {"eventId": "e2", "memberRef": "ann", "amount": 1250}}, api_key=coffee.api_key
    )
    assert by_id["partnerAccrue"]["operation"]["points"] == 12
    assert (
        await gql.error_code(
            ACCRUE, {"input": {"eventId": "e3", "memberRef": "bob", "points": 5}}, api_key=coffee.api_key
        )
        == "MEMBER_NOT_LINKED"
    )
    assert await gql.error_code(ACCRUE, {"input": {"eventId": "e4", "memberRef": "C-1", "points": 5}}, token=ann) == (
        "FORBIDDEN"
    )

    unlink = 'mutation { unlinkPartnerAccount(memberId: "ann", partnerId: "coffee") }'
    assert (await gql.ok(unlink, token=ann))["unlinkPartnerAccount"] is True
    assert (
        await gql.error_code(
            BURN, {"input": {"eventId": "e5", "memberRef": "C-1", "points": 1}}, api_key=coffee.api_key
        )
        == "MEMBER_NOT_LINKED"
    )
    assert await available(services, "ann") == 42
    assert await services.db["ledger"].count_documents({"memberId": "bob"}) == 0


async def test_replayed_event_ids_change_nothing_and_conflicts_are_refused(gql: GraphQLClient, services, db) -> None:
    coffee = await add_partner(services, "coffee")
    await linked_member(services, "ann", ("coffee", "C-1"))
    accrue = {"input": {"eventId": "buy-1", "memberRef": "C-1", "points": 100}}
    first = await gql.ok(ACCRUE, accrue, api_key=coffee.api_key)
    again = await gql.ok(ACCRUE, accrue, api_key=coffee.api_key)
    assert first["partnerAccrue"]["replayed"] is False and again["partnerAccrue"]["replayed"] is True
    assert again["partnerAccrue"]["operation"] == first["partnerAccrue"]["operation"]
    burn = {"input": {"eventId": "burn-1", "memberRef": "C-1", "points": 40}}
    await gql.ok(BURN, burn, api_key=coffee.api_key)
    assert (await gql.ok(BURN, burn, api_key=coffee.api_key))["partnerBurn"]["replayed"] is True
    changed = {"input": {"eventId": "buy-1", "memberRef": "C-1", "points": 101}}
    assert await gql.error_code(ACCRUE, changed, api_key=coffee.api_key) == "IDEMPOTENCY_CONFLICT"
    as_burn = {"input": {"eventId": "buy-1", "memberRef": "C-1", "points": 100}}
    assert await gql.error_code(BURN, as_burn, api_key=coffee.api_key) == "IDEMPOTENCY_CONFLICT"
    assert await available(services, "ann") == 60
    assert await db.ledger.count_documents({"memberId": "ann"}) == 2
    assert await audit_all(db) == []


async def test_the_same_event_racing_in_ten_times_applies_once(services, db) -> None:
    await add_partner(services, "coffee")
    await linked_member(services, "ann", ("coffee", "C-1"))
    command = PartnerCommand(OperationType.ACCRUE, "race-1", "C-1", points=25)
    results = await asyncio.gather(*(services.partner_operations.apply("coffee", command) for _ in range(10)))
    assert sorted(replayed for _, replayed in results) == [False] + [True] * 9
    assert len({op["entryId"] for op, _ in results}) == 1
    assert await available(services, "ann") == 25
    assert await audit_all(db) == []


async def test_burn_refuses_insufficient_points_and_leaves_nothing_half_done(gql: GraphQLClient, services, db) -> None:
    coffee = await add_partner(services, "coffee")
    await linked_member(services, "ann", ("coffee", "C-1"))
    await earn(services.ledger, "ann", 50)
    code = await gql.error_code(
        BURN, {"input": {"eventId": "b1", "memberRef": "C-1", "points": 51}}, api_key=coffee.api_key
    )
    assert code == "INSUFFICIENT_POINTS"
    assert await db["partner_operations"].count_documents({}) == 0
    assert await db.idempotency.count_documents({}) == 0
    ok = await gql.ok(BURN, {"input": {"eventId": "b1", "memberRef": "C-1", "points": 50}}, api_key=coffee.api_key)
    assert ok["partnerBurn"]["operation"]["availableAfter"] == 0


async def test_a_partner_reverses_only_its_own_operations(gql: GraphQLClient, services, db, admin: str) -> None:
    coffee = await add_partner(services, "coffee")
    tea = await add_partner(services, "tea")
    await linked_member(services, "ann", ("coffee", "C-1"), ("tea", "T-1"))
    await earn(services.ledger, "ann", 100)
    await gql.ok(ACCRUE, {"input": {"eventId": "a1", "memberRef": "C-1", "points": 30}}, api_key=coffee.api_key)
    await gql.ok(BURN, {"input": {"eventId": "b1", "memberRef": "C-1", "points": 70}}, api_key=coffee.api_key)
    assert await available(services, "ann") == 60

    stolen = {"input": {"eventId": "r1", "originalEventId": "a1"}}
    assert await gql.error_code(REVERSE, stolen, api_key=tea.api_key) == "PARTNER_OPERATION_NOT_FOUND"
    undo_burn = await gql.ok(REVERSE, {"input": {"eventId": "r1", "originalEventId": "b1"}}, api_key=coffee.api_key)
    assert undo_burn["partnerReverse"]["operation"]["points"] == 70
    assert undo_burn["partnerReverse"]["operation"]["availableAfter"] == 130
    undo_accrue = await gql.ok(
        REVERSE, {"input": {"eventId": "r2", "originalEventId": "a1", "memberRef": "C-1"}}, api_key=coffee.api_key
    )
    assert undo_accrue["partnerReverse"]["operation"]["reversesEventId"] == "a1"
    assert await available(services, "ann") == 100
    again = {"input": {"eventId": "r3", "originalEventId": "a1"}}
    assert await gql.error_code(REVERSE, again, api_key=coffee.api_key) == "ALREADY_REVERSED"
    of_reversal = {"input": {"eventId": "r4", "originalEventId": "r1"}}
    assert await gql.error_code(REVERSE, of_reversal, api_key=coffee.api_key) == "BAD_USER_INPUT"
    replay = await gql.ok(REVERSE, {"input": {"eventId": "r1", "originalEventId": "b1"}}, api_key=coffee.api_key)
    assert replay["partnerReverse"]["replayed"] is True
    lookup = "query($e: String!, $p: ID) { partnerOperation(eventId: $e, partnerId: $p) { type reversedBy } }"
    assert (await gql.ok(lookup, {"e": "b1"}, api_key=coffee.api_key))["partnerOperation"] == {
        "type": "BURN",
        "reversedBy": "r1",
    }
    assert (await gql.ok(lookup, {"e": "b1"}, api_key=tea.api_key))["partnerOperation"] is None
    assert (await gql.ok(lookup, {"e": "a1", "p": "coffee"}, token=admin))["partnerOperation"]["reversedBy"] == "r2"
    assert await gql.error_code(lookup, {"e": "a1", "p": "coffee"}, token=token(Role.MEMBER, "ann")) == "FORBIDDEN"
    assert await available(services, "ann") == 100
    assert await audit_all(db) == []


async def test_conversion_at_ten_to_one_with_remainders(gql: GraphQLClient, services, db) -> None:
    coffee = await add_partner(services, "coffee")
    await linked_member(services, "ann", ("coffee", "C-1"))
    into = await gql.ok(
        CONVERT,
        {"input": {"eventId": "c1", "memberRef": "C-1", "direction": "PARTNER_TO_COALITION", "points": 1234}},
        api_key=coffee.api_key,
    )
    assert into["convertPartnerPoints"]["operation"] == {
        "points": 123,
        "partnerPoints": 1230,
        "fee": 0,
        "remainder": 4,
        "direction": "PARTNER_TO_COALITION",
        "availableAfter": 123,
    }
    out = await gql.ok(
        CONVERT,
        {"input": {"eventId": "c2", "memberRef": "C-1", "direction": "COALITION_TO_PARTNER", "points": 45}},
        api_key=coffee.api_key,
    )
    assert out["convertPartnerPoints"]["operation"]["partnerPoints"] == 450
    assert out["convertPartnerPoints"]["operation"]["availableAfter"] == 78
    too_small = {"input": {"eventId": "c3", "memberRef": "C-1", "direction": "PARTNER_TO_COALITION", "points": 9}}
    assert await gql.error_code(CONVERT, too_small, api_key=coffee.api_key) == "CONVERSION_TOO_SMALL"
    too_much = {"input": {"eventId": "c4", "memberRef": "C-1", "direction": "COALITION_TO_PARTNER", "points": 79}}
    assert await gql.error_code(CONVERT, too_much, api_key=coffee.api_key) == "INSUFFICIENT_POINTS"
    assert await available(services, "ann") == 78
    assert await audit_all(db) == []


async def test_conversion_fee_and_daily_limits(gql: GraphQLClient, services, db) -> None:
    coffee = await add_partner(
        services,
        "coffee",
        fee=Fee(basis_points=1000, fixed=1),
        limits=Limits(daily_accrue_points=100, daily_convert_points=60),
    )
    await linked_member(services, "ann", ("coffee", "C-1"))
    into = await gql.ok(
        CONVERT,
        {"input": {"eventId": "c1", "memberRef": "C-1", "direction": "PARTNER_TO_COALITION", "points": 505}},
        api_key=coffee.api_key,
    )
    assert into["convertPartnerPoints"]["operation"]["points"] == 44  # 50 gross − (1 + 10% of 50)
    over = {"input": {"eventId": "c2", "memberRef": "C-1", "direction": "PARTNER_TO_COALITION", "points": 110}}
    assert await gql.error_code(CONVERT, over, api_key=coffee.api_key) == "PARTNER_LIMIT_EXCEEDED"
    await gql.ok(ACCRUE, {"input": {"eventId": "a1", "memberRef": "C-1", "points": 100}}, api_key=coffee.api_key)
    over_accrue = {"input": {"eventId": "a2", "memberRef": "C-1", "points": 1}}
    assert await gql.error_code(ACCRUE, over_accrue, api_key=coffee.api_key) == "PARTNER_LIMIT_EXCEEDED"
    services.clock.advance(timedelta(days=1))
    await gql.ok(ACCRUE, over_accrue, api_key=coffee.api_key)
    assert await available(services, "ann") == 145
    assert await audit_all(db) == []


async def test_a_limit_set_mid_day_counts_the_days_earlier_usage(gql: GraphQLClient, services, admin: str) -> None:
    coffee = await add_partner(services, "coffee")
    await linked_member(services, "ann", ("coffee", "C-1"))
    await gql.ok(ACCRUE, {"input": {"eventId": "a1", "memberRef": "C-1", "points": 80}}, api_key=coffee.api_key)
    await gql.ok(
        'mutation { updatePartner(id: "coffee", input: {limits: {dailyAccruePoints: 100}}) { id } }', token=admin
    )
    await gql.ok(ACCRUE, {"input": {"eventId": "a2", "memberRef": "C-1", "points": 20}}, api_key=coffee.api_key)
    over = {"input": {"eventId": "a3", "memberRef": "C-1", "points": 1}}
    assert await gql.error_code(ACCRUE, over, api_key=coffee.api_key) == "PARTNER_LIMIT_EXCEEDED"


async def test_statement_reconciles_to_the_ledger(gql: GraphQLClient, services, db, admin: str) -> None:
    coffee = await add_partner(services, "coffee", milli_fen_per_point=1_500, fee=Fee(fixed=1))
    tea = await add_partner(services, "tea")
    await linked_member(services, "ann", ("coffee", "C-1"), ("tea", "T-1"))
    await linked_member(services, "bob", ("coffee", "C-2"))
    await earn(services.ledger, "ann", 500)
    key = coffee.api_key
    await gql.ok(ACCRUE, {"input": {"eventId": "before", "memberRef": "C-2", "points": 7}}, api_key=key)
    services.clock.advance(timedelta(hours=1))
    start = services.clock.now()
    calls = [
        (ACCRUE, {"eventId": "a1", "memberRef": "C-1", "points": 120}),
        (ACCRUE, {"eventId": "a2", "memberRef": "C-2", "amount": 9_999}),
        (BURN, {"eventId": "b1", "memberRef": "C-1", "points": 300}),
        (BURN, {"eventId": "b2", "memberRef": "C-2", "points": 90}),
        (CONVERT, {"eventId": "c1", "memberRef": "C-1", "direction": "PARTNER_TO_COALITION", "points": 555}),
        (CONVERT, {"eventId": "c2", "memberRef": "C-1", "direction": "COALITION_TO_PARTNER", "points": 20}),
        (REVERSE, {"eventId": "r1", "originalEventId": "b2"}),
        (REVERSE, {"eventId": "r2", "originalEventId": "a1"}),
        (REVERSE, {"eventId": "r3", "originalEventId": "c2"}),
    ]
    for query, variables in calls:
        await gql.ok(query, {"input": variables}, api_key=key)
    await gql.ok(ACCRUE, {"input": {"eventId": "tea-1", "memberRef": "T-1", "points": 11}}, api_key=tea.api_key)
    services.clock.advance(timedelta(hours=1))
    end = services.clock.now()
    await gql.ok(ACCRUE, {"input": {"eventId": "after", "memberRef": "C-2", "points": 9}}, api_key=key)

    data = await gql.ok(STATEMENT, {"id": "coffee", "from": start.isoformat(), "to": end.isoformat()}, token=admin)
    st = data["partnerStatement"]
    # Independently from the raw ledger: every entry with coalition partner "coffee" as its source, in [start, end).
    entries = [
        e async for e in db.ledger.find({"source.partnerId": "coffee", "createdAt": {"$gte": start, "$lt": end}})
    ]
    by_kind: dict[str, list] = {}
    for e in entries:
        by_kind.setdefault(e["kind"] + ":" + e.get("reversesKind", ""), []).append(e)

    def total(kind: str, field: str) -> int:
        return sum(e["delta"][field] for e in by_kind.get(kind, []))

    assert st["accruedPoints"] == total("PARTNER_ACCRUE:", "lifetimeEarned") == 219
    assert st["burnedPoints"] == total("PARTNER_BURN:", "spent") == 390
    assert st["accrualReversedPoints"] == -total("PARTNER_REVERSE:PARTNER_ACCRUE", "lifetimeEarned") == 120
    assert st["burnReversedPoints"] == -total("PARTNER_REVERSE:PARTNER_BURN", "spent") == 90
    assert st["convertedInPoints"] == total("PARTNER_CONVERT_IN:", "lifetimeEarned") == 54
    assert st["convertedOutPoints"] == total("PARTNER_CONVERT_OUT:", "spent") - 1 == 20
    assert st["conversionReversedOutPoints"] == 20
    assert st["feePoints"] == 1  # c1's fee stays; c2's fee was refunded by r3
    # Members' holdings moved by exactly funded − owed (the only fee kept, c1's, was never credited).
    held = sum(e["points"] for e in entries)
    assert held == st["fundedByPartnerPoints"] - st["owedToPartnerPoints"]
    assert st["fundedByPartnerPoints"] == 219 - 120 + 54 == 153
    assert st["owedToPartnerPoints"] == 390 - 90 + 20 - 20 == 300
    assert st["netPoints"] == 147
    # Each side rounds once (229.5 → 230 fen funded, 450 owed); net is their difference, 220 (not 220.5 → 221).
    assert st["netMilliFen"] == 147 * 1_500 and st["netFen"] == 220
    assert st["operationCount"] == 9 and st["reconciled"] is True
    page = st["operations"]
    assert [e["node"]["eventId"] for e in page["edges"]] == ["a1", "a2", "b1"]
    assert page["pageInfo"]["hasNextPage"] is True

    mine = await gql.ok(STATEMENT, {"id": "coffee", "from": start.isoformat(), "to": end.isoformat()}, api_key=key)
    assert mine["partnerStatement"]["netPoints"] == 147
    theirs = {"id": "coffee", "from": start.isoformat(), "to": end.isoformat()}
    assert await gql.error_code(STATEMENT, theirs, api_key=tea.api_key) == "FORBIDDEN"
    assert await gql.error_code(STATEMENT, theirs, token=token(Role.MEMBER, "ann")) == "FORBIDDEN"
    assert await audit_all(db) == []


@pytest.mark.parametrize("bad", [{"points": 0}, {"points": 5, "amount": 500}, {}])
async def test_accrue_validation(gql: GraphQLClient, services, bad) -> None:
    coffee = await add_partner(services, "coffee")
    await linked_member(services, "ann", ("coffee", "C-1"))
    code = await gql.error_code(ACCRUE, {"input": {"eventId": "x", "memberRef": "C-1", **bad}}, api_key=coffee.api_key)
    assert code == "BAD_USER_INPUT"
