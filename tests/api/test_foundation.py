"""The walking skeleton through its public surfaces: HTTP, GraphQL, auth, CLI."""

from __future__ import annotations

from datetime import timedelta

import httpx

from gateway.core.auth import Role
from tests.conftest import GraphQLClient, token

REGISTER = """
mutation($input: RegisterMemberInput!) {
  registerMember(input: $input) { id displayName email tier { code } points { available } }
}"""
MEMBER = "query($id: ID!) { member(id: $id) { id displayName email birthday tier { code name pricePercent } } }"


async def test_tiers_are_public(gql: GraphQLClient) -> None:
    data = await gql.ok("{ tiers { code name threshold pricePercent canRedeemGifts } }")
    assert [t["code"] for t in data["tiers"]] == ["MEMBER", "SENIOR", "VIP", "SUPREME_VIP"]
    assert [t["threshold"] for t in data["tiers"]] == [100, 38_000, 200_000, 500_000]
    assert [t["pricePercent"] for t in data["tiers"]] == [98, 95, 90, 86]
    assert [t["canRedeemGifts"] for t in data["tiers"]] == [False, True, True, True]


async def test_register_then_read_round_trips_through_mongodb(gql: GraphQLClient, admin: str, db) -> None:
    created = await gql.ok(
        REGISTER,
        {"input": {"displayName": " Ada ", "email": "Ada@Example.com", "birthday": "1990-05-01"}},
        token=admin,
    )
    member = created["registerMember"]
    assert member["displayName"] == "Ada"
    assert member["email"] == "ada@example.com"
    assert member["tier"]["code"] == "MEMBER"
    assert member["points"]["available"] == 0
    stored = await db.members.find_one({"_id": member["id"]})
    assert stored is not None and stored["displayName"] == "Ada"
    read = await gql.ok(MEMBER, {"id": member["id"]}, token=admin)
    assert read["member"]["birthday"] == "1990-05-01"
    assert read["member"]["tier"]["pricePercent"] == 98


async def test_member_reads_only_themselves(gql: GraphQLClient, admin: str) -> None:
    for member_id in ("alice", "bob"):
        await gql.ok(REGISTER, {"input": {"displayName": member_id, "id": member_id}}, token=admin)
    alice = token(Role.MEMBER, "alice")
    assert (await gql.ok(MEMBER, {"id": "alice"}, token=alice))["member"]["id"] == "alice"
    assert (await gql.ok("{ me { id } }", token=alice))["me"]["id"] == "alice"
    assert await gql.error_code(MEMBER, {"id": "bob"}, token=alice) == "FORBIDDEN"
    assert await gql.error_code(MEMBER, {"id": "bob"}, token=token(Role.DASHBOARD)) == "FORBIDDEN"


async def test_no_token_bad_token_and_expired_token_are_unauthenticated(gql: GraphQLClient) -> None:
    assert await gql.error_code(MEMBER, {"id": "x"}) == "UNAUTHENTICATED"
    assert await gql.error_code(MEMBER, {"id": "x"}, token="not-a-jwt") == "UNAUTHENTICATED"
    expired = token(Role.ADMIN, ttl=timedelta(seconds=-5))
    assert await gql.error_code(MEMBER, {"id": "x"}, token=expired) == "UNAUTHENTICATED"
    assert await gql.error_code(MEMBER, {"id": "x"}, api_key="lgk_unknown") == "UNAUTHENTICATED"


async def test_member_registers_themselves_once(gql: GraphQLClient) -> None:
    carol = token(Role.MEMBER, "carol")
    data = await gql.ok(REGISTER, {"input": {"displayName": "Carol", "id": "ignored"}}, token=carol)
    assert data["registerMember"]["id"] == "carol"
    assert await gql.error_code(REGISTER, {"input": {"displayName": "Carol"}}, token=carol) == "ALREADY_EXISTS"
    assert await gql.error_code(REGISTER, {"input": {"displayName": "X"}}) == "UNAUTHENTICATED"
    assert await gql.error_code(REGISTER, {"input": {"displayName": "X"}}, token=token(Role.DASHBOARD)) == "FORBIDDEN"


async def test_bad_input_is_a_coded_error_and_writes_nothing(gql: GraphQLClient, admin: str, db) -> None:
    cases = [
        {"displayName": ""},
        {"displayName": "A", "email": "not-an-email"},
        {"displayName": "A", "phone": "call me"},
        {"displayName": "A", "birthday": "2999-01-01"},
    ]
    for case in cases:
        assert await gql.error_code(REGISTER, {"input": case}, token=admin) == "BAD_USER_INPUT"
    assert (
        await gql.error_code(REGISTER, {"input": {"displayName": "A", "referrerId": "ghost"}}, token=admin)
        == "MEMBER_NOT_FOUND"
    )
    await gql.ok(REGISTER, {"input": {"displayName": "A", "email": "a@x.io"}}, token=admin)
    assert (
        await gql.error_code(REGISTER, {"input": {"displayName": "B", "email": "A@x.io"}}, token=admin)
        == "ALREADY_EXISTS"
    )
    assert await db.members.count_documents({}) == 1


async def test_next_tier_says_what_is_left(gql: GraphQLClient, admin: str) -> None:
    await gql.ok(REGISTER, {"input": {"displayName": "N", "id": "n"}}, token=admin)
    data = await gql.ok(
        '{ member(id: "n") { nextTier { tier { code } remaining benefitsGained { code } } } }', token=admin
    )
    assert data["member"]["nextTier"] == {
        "tier": {"code": "SENIOR"},
        "remaining": 38_000,
        "benefitsGained": [{"code": "GIFT_REDEMPTION"}, {"code": "MEMBER_DAY_PRICES"}],
    }


async def test_graphql_over_http_media_types_and_status_codes(http: httpx.AsyncClient) -> None:
    modern = {"Accept": "application/graphql-response+json"}
    ok = await http.post("/graphql", json={"query": "{ tiers { code } }"}, headers=modern)
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("application/graphql-response+json")
    bad = await http.post("/graphql", json={"query": "{ tiers { nope } }"}, headers=modern)
    assert bad.status_code == 400 and "data" not in bad.json()
    legacy = await http.post("/graphql", json={"query": "{ tiers { nope } }"}, headers={"Accept": "application/json"})
    assert legacy.status_code == 200 and legacy.headers["content-type"].startswith("application/json")
    get = await http.get("/graphql", params={"query": "{ tiers { code } }"}, headers=modern)
    assert get.status_code == 200 and len(get.json()["data"]["tiers"]) == 4
    mutation_over_get = await http.get("/graphql", params={"query": "mutation { __typename }"})
    assert mutation_over_get.status_code == 405
    unparseable = await http.post("/graphql", content=b"{", headers={"Content-Type": "application/json"})
    assert unparseable.status_code == 400


async def test_unexpected_errors_are_masked(gql: GraphQLClient, admin: str, db, monkeypatch) -> None:
    from gateway.features.members import Members

    async def boom(self, *args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(Members, "get_many", boom)
    body = await gql(MEMBER, {"id": "x"}, token=admin)
    assert body["errors"][0]["message"] == "Internal server error"
    assert body["errors"][0]["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert "secret" not in str(body)


async def test_health_and_readiness(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["mongodb"] is True


async def test_federation_entities_resolve_members(gql: GraphQLClient, admin: str) -> None:
    await gql.ok(REGISTER, {"input": {"displayName": "Fed", "id": "fed"}}, token=admin)
    data = await gql.ok(
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member { id displayName } } }",
        {"r": [{"__typename": "Member", "id": "fed"}]},
        token=admin,
    )
    assert data["_entities"] == [{"id": "fed", "displayName": "Fed"}]
    sdl = (await gql.ok("{ _service { sdl } }"))["_service"]["sdl"]
    assert '@key(fields: "id")' in sdl


def _sample(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


async def test_metrics_count_operations_errors_and_committed_ledger_entries(
    http: httpx.AsyncClient, gql: GraphQLClient, admin: str, services
) -> None:
    from tests.support.ledger_helpers import add_member, earn

    before = (await http.get("/metrics")).text
    await gql.ok("{ tiers { code } }")
    assert await gql.error_code(MEMBER, {"id": "nobody"}) == "UNAUTHENTICATED"
    await add_member(services, "metered")
    await earn(services.ledger, "metered", 40)
    response = await http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    def grew(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert grew("loyalty_graphql_operations_total", type="query", outcome="ok") >= 1
    assert grew("loyalty_graphql_errors_total", code="UNAUTHENTICATED") >= 1
    assert grew("loyalty_ledger_entries_total", kind="GRANT") == 1
    assert grew("loyalty_ledger_points_total", kind="GRANT") == 40
    assert "member_id" not in after and "metered" not in after
