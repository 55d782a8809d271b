"""Customer service reads a member's ledger through GraphQL, narrowed by kind, source and time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.core.auth import Role
from tests.conftest import token
from tests.support.partner_helpers import add_partner, linked_member
from tests.support.points_helpers import grant, purchase

LEDGER = """
query($id: ID!, $f: LedgerFilterInput, $first: Int, $after: String) {
  member(id: $id) {
    ledger(filter: $f, first: $first, after: $after) {
      edges { node { position kind points source { type id partnerId } createdAt } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""
ACCRUE = "mutation($input: PartnerAccrueInput!) { partnerAccrue(input: $input) { replayed } }"


@pytest.fixture
async def history(services, gql, admin, clock):
    """ann: a partner accrual, two purchases a day apart, a grant; positions 1..4."""
    own = await add_partner(services, "own")
    await linked_member(services, "ann", ("own", "ann-ref"))
    await gql.ok(ACCRUE, {"input": {"eventId": "e-1", "memberRef": "ann-ref", "points": 50}}, api_key=own.api_key)
    clock.advance(timedelta(days=1))
    await purchase(gql, admin, "ann", "order-1", 10_000)
    clock.advance(timedelta(days=1))
    await purchase(gql, admin, "ann", "order-2", 20_000)
    await grant(gql, admin, "ann", 30, "goodwill-1", reason="sorry for the delay")
    return clock.now()


async def page(gql, staff, **filter_fields):
    data = await gql.ok(LEDGER, {"id": "ann", "f": filter_fields or None, "first": 50}, token=staff)
    return [(e["node"]["kind"], e["node"]["source"]["id"]) for e in data["member"]["ledger"]["edges"]]


@pytest.fixture
def support():
    return token(Role.SUPPORT, "cs-3")


async def test_support_narrows_the_ledger_by_kind_source_partner_and_time(gql, history, support):
    everything = await page(gql, support)
    assert [k for k, _ in everything] == ["GRANT", "PURCHASE", "PURCHASE", "PARTNER_ACCRUE"]
    assert await page(gql, support, kinds=["PURCHASE"]) == [("PURCHASE", "order-2"), ("PURCHASE", "order-1")]
    assert await page(gql, support, kinds=["GRANT", "PARTNER_ACCRUE"]) == [everything[0], everything[3]]
    assert await page(gql, support, sourceType="ORDER", sourceId="order-1") == [("PURCHASE", "order-1")]
    assert await page(gql, support, partnerId="own") == [everything[3]]
    assert await page(gql, support, sourceType="OPERATOR") == [everything[0]]
    now = history
    assert await page(gql, support, since=(now - timedelta(hours=1)).isoformat()) == everything[:2]
    assert await page(gql, support, until=(now - timedelta(hours=1)).isoformat()) == everything[2:]
    day_before = {
        "since": (now - timedelta(days=1, hours=1)).isoformat(),
        "until": (now - timedelta(hours=1)).isoformat(),
    }
    assert await page(gql, support, **day_before) == [("PURCHASE", "order-1")]
    assert await page(gql, support, kinds=["REFUND"]) == []


async def test_a_filtered_ledger_pages_without_gaps(gql, history, support):
    seen, after = [], None
    while True:
        data = await gql.ok(
            LEDGER, {"id": "ann", "f": {"kinds": ["PURCHASE", "GRANT"]}, "first": 1, "after": after}, token=support
        )
        ledger = data["member"]["ledger"]
        seen += [e["node"]["position"] for e in ledger["edges"]]
        if not ledger["pageInfo"]["hasNextPage"]:
            break
        after = ledger["pageInfo"]["endCursor"]
    assert seen == [4, 3, 2]


async def test_the_member_filters_their_own_ledger_too(gql, history):
    data = await gql.ok(LEDGER, {"id": "ann", "f": {"kinds": ["GRANT"]}}, token=token(Role.MEMBER, "ann"))
    assert [e["node"]["kind"] for e in data["member"]["ledger"]["edges"]] == ["GRANT"]


@pytest.mark.parametrize(
    ("filter_fields", "field"),
    [
        ({"since": "2026-03-05T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, "until"),
        ({"sourceType": "order"}, "sourceType"),
        ({"sourceId": ""}, "sourceId"),
        ({"partnerId": "x" * 201}, "partnerId"),
    ],
)
async def test_a_bad_ledger_filter_names_its_field(gql, history, support, filter_fields, field):
    body = await gql(LEDGER, {"id": "ann", "f": filter_fields}, token=support)
    assert body["errors"][0]["extensions"] == {
        **body["errors"][0]["extensions"],
        "code": "BAD_USER_INPUT",
        "field": field,
    }


async def test_staff_without_members_read_see_no_ledger(gql, history):
    for role in (Role.MARKETING, Role.WAREHOUSE):
        assert await gql.error_code(LEDGER, {"id": "ann"}, token=token(role, "x")) == "FORBIDDEN"
