"""Issue 16 §3-4: bad input is refused with a code, never a 500 or a masked internal error."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from graphql import GraphQLObjectType, get_named_type

from gateway.core.auth import Role
from gateway.domain.money import MAX_ORDER_FEN
from gateway.features.redemptions import ORDER_ID, new_order_id
from gateway.services import Services
from resolvers.schema import schema
from tests.conftest import GraphQLClient, token
from tests.support.catalog_helpers import CANCEL, create_gift, member_with, redeem
from tests.support.ledger_helpers import add_member
from tests.support.partner_helpers import add_partner

REGISTER = "mutation($input: RegisterMemberInput!) { registerMember(input: $input) { id displayName email phone } }"


async def test_a_body_that_is_not_a_json_object_is_a_400_graphql_error(http: httpx.AsyncClient) -> None:
    for body in (b"123", b'"hello"', b"null", b"[1, 2]", b"true"):
        response = await http.post("/graphql", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, body
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_a_request_that_is_not_json_at_all_is_a_400_graphql_error(http: httpx.AsyncClient) -> None:
    """Not a plain-text 400: a client reads the same error shape (and code) for every refusal."""
    for body in (b"{", b"{query: 1}", b"not json", b'{"query": "{ tiers { code } }",}', b"\xff\xfe"):
        response = await http.post("/graphql", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, body
        assert response.headers["content-type"].startswith("application/json"), body
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "BAD_REQUEST", body
        assert error["message"] == "The request is not valid JSON", body
    response = await http.get("/graphql", params={"query": "{ tiers { code } }", "variables": "{"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    ("name", "character"),
    [
        ("Bad\ud800Name", "U+D800"),  # a lone surrogate
        ("Nul\x00Byte", "U+0000"),
        ("Bell\x07", "U+0007"),
        ("evil\u202egnp.exe", "U+202E"),  # right-to-left override
        ("iso\u2066late", "U+2066"),
        ("C1\x85control", "U+0085"),
    ],
)
async def test_unsafe_characters_in_any_text_input_are_bad_user_input(
    http: httpx.AsyncClient, admin: str, name: str, character: str
) -> None:
    payload = json.dumps({"query": REGISTER, "variables": {"input": {"displayName": name}}})  # \uXXXX escapes
    response = await http.post(
        "/graphql",
        content=payload,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {admin}"},
    )
    body = response.json()
    error = body["errors"][0]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.displayName"}
    assert character in error["message"] and name not in error["message"]
    assert body.get("data") is None


async def test_escapes_in_string_literals_are_checked_too(gql: GraphQLClient, admin: str) -> None:
    query = 'mutation { registerMember(input: {displayName: "nul\\u0000here"}) { id } }'
    assert await gql.error_code(query, token=admin) == "BAD_USER_INPUT"


async def test_names_are_one_line_but_longer_text_may_have_line_breaks(gql: GraphQLClient, admin: str) -> None:
    body = await gql(REGISTER, {"input": {"displayName": "two\nlines"}}, token=admin)
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "displayName"}
    gift = await create_gift(gql, admin, description="Line one\nline two\tand a tab")
    assert gift["name"] == "iPhone 6"
    bad_gift = await gql(
        "mutation($input: CreateGiftInput!) { createGift(input: $input) { id } }",
        {"input": {"name": "Two\nlines", "category": "x", "costPrice": 1, "points": 1, "stock": 1}},
        token=admin,
    )
    assert bad_gift["errors"][0]["extensions"]["field"] == "name"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", ""),
        ("email", "someone@"),
        ("email", "a@b"),
        ("email", "a@b.cn\n"),
        ("email", "a" * 250 + "@b.cn"),
        ("phone", ""),
        ("phone", "call me"),
        ("phone", "+86 138 0013 8000\n"),
    ],
)
async def test_an_invalid_email_or_phone_is_a_field_error_never_a_silent_null(
    gql: GraphQLClient, admin: str, field: str, value: str
) -> None:
    body = await gql(REGISTER, {"input": {"displayName": "Li", field: value}}, token=admin)
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
    assert body["data"] is None


async def test_a_valid_email_and_phone_are_kept(gql: GraphQLClient, admin: str) -> None:
    variables = {"input": {"displayName": "Li", "email": "Li@Example.cn", "phone": "+86 138-0013"}}
    data = await gql.ok(REGISTER, variables, token=admin)
    assert (data["registerMember"]["email"], data["registerMember"]["phone"]) == ("li@example.cn", "+86 138-0013")


async def test_messages_quote_input_safely_and_never_as_a_python_repr(gql: GraphQLClient, admin: str) -> None:
    long_id = "x" * 500
    body = await gql("query($id: ID!) { member(id: $id) { id } }", {"id": long_id}, token=admin)
    message = body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "MEMBER_NOT_FOUND"
    assert long_id not in message and len(message) < 80 and "'" not in message


ENTITIES = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member { id displayName } } }"


async def test_entities_refuse_bad_representations_one_by_one(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    await add_member(services, "m-ok")
    representations: list[Any] = [
        {"__typename": "Member", "id": "m-ok"},
        {"id": "m-ok"},  # no __typename
        {"__typename": "Member", "id": {"$ne": None}},  # an operator where a key belongs
        {"__typename": "Nope", "id": "m-ok"},
        "Member:m-ok",
    ]
    body = await gql(ENTITIES, {"r": representations}, token=admin)
    assert body["data"]["_entities"][0] == {"id": "m-ok", "displayName": "m-ok"}
    errors = {tuple(e["path"]): e for e in body["errors"]}
    assert sorted(errors) == [("_entities", i) for i in range(1, 5)]
    for error in errors.values():
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "$ne" not in error["message"] and "{" not in error["message"]


async def test_entities_take_a_bounded_number_of_representations(gql: GraphQLClient, admin: str) -> None:
    too_many = [{"__typename": "Member", "id": f"m{i}"} for i in range(101)]
    assert await gql.error_code(ENTITIES, {"r": too_many}, token=admin) == "BAD_USER_INPUT"


@pytest.mark.parametrize("operation", [ENTITIES, "{ _service { sdl } }"])
async def test_federation_entry_points_are_for_the_router_only_when_configured(
    http: httpx.AsyncClient, services: Services, operation: str
) -> None:
    services.settings.federation_router_only = True
    services.settings.router_secret = "router-secret-router-secret"  # type: ignore[assignment]
    services.settings.__dict__["router_secret"] = __import__("pydantic").SecretStr("router-secret-router-secret")
    payload = {"query": operation, "variables": {"r": []}}
    refused = await http.post("/graphql", json=payload)
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    wrong = await http.post("/graphql", json=payload, headers={"X-Router-Secret": "guess"})
    assert wrong.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    allowed = await http.post("/graphql", json=payload, headers={"X-Router-Secret": "router-secret-router-secret"})
    assert "errors" not in allowed.json()


async def test_federation_is_router_only_by_default_in_production_only(services: Services) -> None:
    from gateway.core.settings import Environment, Settings

    assert not Settings(environment=Environment.DEVELOPMENT).federation_router_only_effective
    assert Settings(environment=Environment.PRODUCTION).federation_router_only_effective
    opted_out = Settings(environment=Environment.PRODUCTION, federation_router_only=False)
    assert not opted_out.federation_router_only_effective


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


GARBAGE_CURSORS = [
    "%%%",
    "not base64!",
    _cursor("garbage"),
    _cursor("\x00"),
    "////",
    base64.b64encode(b"\xff\xfe").decode(),
]
CONNECTIONS = {
    ("Query", "gifts"): "query($after: String) { gifts(after: $after) { edges { cursor } } }",
    ("Query", "notifications"): "query($after: String) { notifications(after: $after) { edges { cursor } } }",
    ("Member", "ledger"): 'query($after: String) { member(id: "m1") { ledger(after: $after) { edges { cursor } } } }',
    ("Member", "redemptions"): (
        'query($after: String) { member(id: "m1") { redemptions(after: $after) { edges { cursor } } } }'
    ),
    ("Member", "purchases"): (
        'query($after: String) { member(id: "m1") { purchases(after: $after) { edges { cursor } } } }'
    ),
    ("Query", "members"): "query($after: String) { members(after: $after) { edges { cursor } } }",
    ("Query", "campaigns"): "query($after: String) { campaigns(after: $after) { edges { cursor } } }",
    ("Query", "segmentGrants"): "query($after: String) { segmentGrants(after: $after) { edges { cursor } } }",
    ("Query", "grantRequests"): "query($after: String) { grantRequests(after: $after) { edges { cursor } } }",
    ("Query", "adminAuditLog"): "query($after: String) { adminAuditLog(after: $after) { edges { cursor } } }",
    ("SegmentGrant", "targets"): (
        "query($after: String, $job: ID!) { segmentGrant(id: $job) { targets(after: $after) { edges { cursor } } } }"
    ),
    ("PartnerStatement", "operations"): (
        'query($after: String) { partnerStatement(partnerId: "p1", from: "2026-01-01T00:00:00Z", '
        'to: "2027-01-01T00:00:00Z") { operations(after: $after) { edges { cursor } } } }'
    ),
}


def connection_fields() -> set[tuple[str, str]]:
    """Every field of the schema that pages with an ``after`` cursor."""
    found = set()
    for type_ in schema._schema.type_map.values():
        if isinstance(type_, GraphQLObjectType) and not type_.name.startswith("__"):
            for name, field in type_.fields.items():
                if "after" in field.args and get_named_type(field.type).name.endswith("Connection"):
                    found.add((type_.name, name))
    return found


def test_every_connection_has_a_garbage_cursor_case() -> None:
    assert connection_fields() == set(CONNECTIONS), "add the new connection to CONNECTIONS"


@pytest.mark.parametrize("where", sorted(CONNECTIONS))
async def test_a_garbage_cursor_is_bad_user_input_on_every_connection(
    gql: GraphQLClient, admin: str, services: Services, where: tuple[str, str]
) -> None:
    await add_member(services, "m1")
    await add_partner(services, "p1")
    extra: dict[str, str] = {}
    if where == ("SegmentGrant", "targets"):
        start = "mutation($i: SegmentGrantInput!) { startSegmentGrant(input: $i) { id } }"
        job = {"points": 10, "reason": "cursor check", "idempotencyKey": "cursor-job"}
        extra["job"] = (await gql.ok(start, {"i": job}, token=admin))["startSegmentGrant"]["id"]
    for cursor in GARBAGE_CURSORS:
        body = await gql(CONNECTIONS[where], {"after": cursor, **extra}, token=admin)
        assert body.get("errors"), (where, cursor, body)
        assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}, (where, cursor)


RECORD = """mutation($input: RecordPurchaseInput!) { recordPurchase(input: $input) { points } }"""


@pytest.mark.parametrize("amount", [MAX_ORDER_FEN + 1, 2**31 - 1, 0, -5])
async def test_money_amounts_have_a_documented_upper_bound(
    gql: GraphQLClient, admin: str, services: Services, amount: int
) -> None:
    await add_member(services, "buyer")
    variables = {"input": {"memberId": "buyer", "orderId": "o-1", "amount": amount, "idempotencyKey": "k"}}
    body = await gql(RECORD, variables, token=admin)
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "amount"}


async def test_the_upper_bound_itself_is_accepted(gql: GraphQLClient, admin: str, services: Services) -> None:
    await add_member(services, "rich")
    variables = {
        "input": {"memberId": "rich", "orderId": "o-max", "amount": MAX_ORDER_FEN, "idempotencyKey": "k"}
    }
    assert (await gql.ok(RECORD, variables, token=admin))["recordPurchase"]["points"] > 0


REDEMPTION = "query($id: ID!) { redemption(id: $id) { id } }"


async def test_someone_elses_redemption_answers_like_a_missing_one(
    gql: GraphQLClient, admin: str, services: Services
) -> None:
    gift = await create_gift(gql, admin)
    owner = await member_with(services, "owner", points=5_000)
    prober = await member_with(services, "prober", points=0)
    order = (await redeem(gql, owner, "owner", gift["id"], "k-1"))["data"]["redeemGift"]
    missing = new_order_id()

    for query in (REDEMPTION, CANCEL):
        theirs = (await gql(query, {"id": order["id"]}, token=prober))["errors"][0]
        absent = (await gql(query, {"id": missing}, token=prober))["errors"][0]
        assert theirs["extensions"] == absent["extensions"] == {"code": "REDEMPTION_NOT_FOUND"}
        assert theirs["message"].replace(order["id"], "ID") == absent["message"].replace(missing, "ID")
    assert (await gql.ok(REDEMPTION, {"id": order["id"]}, token=owner))["redemption"]["id"] == order["id"]


def test_order_ids_sort_by_time_but_cannot_be_guessed_from_it() -> None:
    ids = [new_order_id() for _ in range(200)]
    assert all(ORDER_ID.fullmatch(i) for i in ids)
    assert ids == sorted(ids)  # one process, in creation order
    tails = {i[-16:] for i in ids}
    assert len(tails) == len(ids)  # 64 random bits each: a neighbour's id says nothing about this one
    assert token(Role.ADMIN)  # (the fixture module's token helper is importable from here)
