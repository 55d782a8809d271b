"""Operation limits and production defaults, through HTTP: each refusal is a coded error, nothing runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.core.auth import Role
from gateway.store.mongo import Database
from tests.conftest import GraphQLClient, token
from tests.support.gateways import gateway_with

GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture
async def prod_http(tmp_path: Path, mongo_uri: str, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_with(tmp_path, mongo_uri, db, environment="production") as client:
        yield client


async def post(http: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None, **headers: str) -> Any:
    return await http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


async def test_a_thousand_aliases_are_refused_while_lexing(http: httpx.AsyncClient, db: Database) -> None:
    query = "{" + " ".join(f"a{i}: tiers {{ code }}" for i in range(1000)) + "}"
    response = await post(http, query, accept=GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert codes(response.json()) == ["TOO_MANY_TOKENS"]
    assert "data" not in response.json()


async def test_each_limit_has_its_code(gql: GraphQLClient) -> None:
    aliases = "{" + " ".join(f"a{i}: tiers {{ code }}" for i in range(31)) + "}"
    assert "TOO_MANY_ALIASES" in codes(await gql(aliases))
    roots = "{" + " ".join(f"t{i}: __typename" for i in range(16)) + "}"
    assert codes(await gql(roots)) == ["TOO_MANY_ROOT_FIELDS"]
    directives = "{ tiers { " + " ".join(f"c{i}: code @include(if: true)" for i in range(21)) + " } }"
    assert "TOO_MANY_DIRECTIVES" in codes(await gql(directives))
    assert codes(await gql("{ gifts(first: 101) { edges { node { id } } } }")) == ["PAGE_SIZE_TOO_LARGE"]
    by_variable = "query($n: Int!) { gifts(first: $n) { edges { node { id } } } }"
    assert codes(await gql(by_variable, {"n": 500})) == ["PAGE_SIZE_TOO_LARGE"]


async def test_a_document_that_passed_is_measured_again_when_its_variables_or_limits_change(
    gql: GraphQLClient, tmp_path: Path, mongo_uri: str, db: Database
) -> None:
    """A passing document is remembered (it is measured once), but not its variables' verdict."""
    by_variable = "query($n: Int!) { gifts(first: $n) { edges { node { id } } } }"
    for _ in range(2):
        assert codes(await gql(by_variable, {"n": 5})) == []
        assert codes(await gql(by_variable, {"n": 500})) == ["PAGE_SIZE_TOO_LARGE"]
    deep = "{ tiers { benefits { code } } }"
    assert codes(await gql(deep)) == []
    async with gateway_with(tmp_path, mongo_uri, db, max_query_depth=2) as client:
        assert codes((await post(client, deep)).json()) == ["QUERY_TOO_DEEP"]
    assert codes(await gql(deep)) == []


async def test_depth_is_limited(tmp_path: Path, mongo_uri: str, db: Database) -> None:
    """The schema has no cycles (its deepest path is short), so a lower limit shows the check."""
    deep = '{ member(id: "x") { ledger { edges { node { id } } } } }'
    async with gateway_with(tmp_path, mongo_uri, db, max_query_depth=3) as client:
        body = (await post(client, deep)).json()
        assert codes(body) == ["QUERY_TOO_DEEP"]
        assert body["errors"][0]["extensions"]["depth"] == 5
        assert codes((await post(client, "{ tiers { benefits { code } } }")).json()) == []


async def test_huge_numbers_are_refused_without_a_server_error(gql: GraphQLClient, admin: str) -> None:
    """Found by the fuzzer: a 26-digit `first` reached the error's extensions and broke JSON encoding (500)."""
    huge = "{ gifts(first: 34410225049593802462855168) { edges { node { id } } } }"
    assert codes(await gql(huge)) == ["GRAPHQL_VALIDATION_FAILED"]
    nested = (
        'query($n: Int!) { partnerStatement(partnerId: "p", from: "2026-01-01T00:00:00Z", to: "2026-02-01T00:00:00Z")'
        " { operations(first: $n) { edges { node { eventId } } } } }"
    )
    body = await gql(nested, {"n": 2**70}, token=admin)
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_cost_multiplies_lists_by_their_page_size(gql: GraphQLClient, admin: str) -> None:
    """100 entities × 3 connections of 100 rows: far over the cost limit, refused before any read."""
    rows = "{ edges { node { __typename } } }"
    query = (
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member { "
        f"ledger(first: 100) {rows} redemptions(first: 100) {rows} purchases(first: 100) {rows} }} }} }}"
    )
    representations = [{"__typename": "Member", "id": f"m{i}"} for i in range(100)]
    body = await gql(query, {"r": representations}, token=admin)
    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body["errors"][0]["extensions"]["cost"] > body["errors"][0]["extensions"]["limit"]
    # the same shape for one member is fine
    assert "QUERY_TOO_COMPLEX" not in codes(await gql(query, {"r": representations[:1]}, token=admin))


async def test_fragment_fan_out_is_measured_in_linear_time(gql: GraphQLClient) -> None:
    """Each fragment spreads the next twice: 2^18 paths, measured once per fragment."""
    fragments = " ".join(f"fragment F{i} on Tier {{ code ...F{i + 1} ...F{i + 1} }}" for i in range(18))
    query = "{ tiers { ...F0 } } " + fragments + " fragment F18 on Tier { name }"
    body = await gql(query)
    assert "errors" not in body, body  # merged fields: one code and one name per tier
    aliased = " ".join(
        f"fragment G{i} on Query {{ a{i}: tiers {{ code }} ...G{i + 1} ...G{i + 1} }}" for i in range(18)
    )
    body = await gql("{ ...G0 } " + aliased + " fragment G18 on Query { tiers { code } }")
    assert "TOO_MANY_ROOT_FIELDS" in codes(body)


async def test_body_over_the_limit_is_413(http: httpx.AsyncClient) -> None:
    big = "x" * (300 * 1024)
    response = await http.post("/graphql", json={"query": "{ tiers { code } }", "variables": {"pad": big}})
    assert response.status_code == 413
    assert codes(response.json()) == ["PAYLOAD_TOO_LARGE"]

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "{ tiers { code } }", "variables": {"pad": "'
        for _ in range(40):
            yield b"y" * 10_000
        yield b'"}}'

    chunked = await http.post("/graphql", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413


async def test_variables_over_the_limit(gql: GraphQLClient) -> None:
    body = await gql("query($pad: String) { tiers { code } }", {"pad": "z" * (70 * 1024)})
    assert codes(body) == ["VARIABLES_TOO_LARGE"]


async def test_request_errors_carry_apollo_codes(gql: GraphQLClient, admin: str) -> None:
    assert codes(await gql("{ tiers { ")) == ["GRAPHQL_PARSE_FAILED"]
    assert codes(await gql("{ tiers { nope } }")) == ["GRAPHQL_VALIDATION_FAILED"]
    restock = 'mutation($q: Int!) { restockGift(id: "g", quantity: $q) { id } }'
    body = await gql(restock, {"q": 2147483648}, token=admin)
    assert codes(body) == ["BAD_USER_INPUT"]
    statement = 'query($d: DateTime!) { partnerStatement(partnerId: "p", from: $d, to: $d) { reconciled } }'
    body = await gql(statement, {"d": "2026-13-45"}, token=admin)
    assert codes(body) == ["BAD_USER_INPUT"]
    assert "month must be" not in body["errors"][0]["message"]  # Python's own words stay inside


async def test_development_introspects_and_suggests(gql: GraphQLClient) -> None:
    assert "errors" not in await gql("{ __schema { queryType { name } } }")
    assert "Did you mean" in (await gql("{ tier { code } }"))["errors"][0]["message"]


async def test_production_hides_the_schema(prod_http: httpx.AsyncClient) -> None:
    response = await post(prod_http, "{ __schema { types { name } } }")
    assert codes(response.json()) == ["INTROSPECTION_DISABLED"]
    response = await post(prod_http, '{ __type(name: "Member") { name } }')
    assert codes(response.json()) == ["INTROSPECTION_DISABLED"]
    response = await post(prod_http, "{ _service { sdl } }")
    assert codes(response.json()) == ["INTROSPECTION_DISABLED"]
    admin = token(Role.ADMIN)
    response = await post(prod_http, "{ _service { sdl } }", authorization=f"Bearer {admin}")
    assert codes(response.json()) == ["FORBIDDEN"]  # in production the SDL is for the router only (issue 16)
    response = await post(prod_http, "{ tier { code } }")
    message = response.json()["errors"][0]["message"]
    assert codes(response.json()) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "Did you mean" not in message and "tiers" not in message
    assert (await post(prod_http, "{ tiers { code } }")).json()["data"]["tiers"]


async def test_the_router_reads_the_sdl_in_production(tmp_path: Path, mongo_uri: str, db: Database) -> None:
    secret = "router-secret-that-is-long-enough-0123"
    async with gateway_with(tmp_path, mongo_uri, db, environment="production", router_secret=secret) as client:
        body = (await post(client, "{ _service { sdl } }", **{"x-router-secret": secret})).json()
        refused = (await post(client, "{ __schema { queryType { name } } }", **{"x-router-secret": secret})).json()
    assert "type Member" in body["data"]["_service"]["sdl"]  # supergraph composition
    assert codes(refused) == ["INTROSPECTION_DISABLED"]  # the secret opens _service, not introspection


async def test_introspection_can_be_enabled_in_production(tmp_path: Path, mongo_uri: str, db: Database) -> None:
    async with gateway_with(tmp_path, mongo_uri, db, environment="production", introspection=True) as client:
        body = (await post(client, "{ __schema { queryType { name } } }")).json()
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_cors_is_off_by_default_and_allow_listed_when_set(
    http: httpx.AsyncClient, tmp_path: Path, mongo_uri: str, db: Database
) -> None:
    preflight = {"origin": "https://shop.example", "access-control-request-method": "POST"}
    response = await http.options("/graphql", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    async with gateway_with(tmp_path, mongo_uri, db, cors_allow_origins="https://shop.example") as client:
        allowed = await client.options("/graphql", headers=preflight)
        other = await client.options("/graphql", headers={**preflight, "origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert "access-control-allow-origin" not in other.headers
