"""Apollo automatic persisted queries in MongoDB, and the allow-list of registered operations."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx

from gateway.core.auth import Role
from gateway.services import Services
from gateway.store.mongo import Database
from tests.api.test_cli import run_cli
from tests.conftest import JWT_SECRET, token
from tests.support.gateways import gateway_with
from tests.support.partner_helpers import add_partner

TIERS = "query Tiers { tiers { code } }"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(sha256: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256}}


async def send(http: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await http.post("/graphql", json=body, headers=headers)
    return response.json()


def code(body: dict[str, Any]) -> str | None:
    errors = body.get("errors")
    return errors[0]["extensions"]["code"] if errors else None


async def test_apq_registers_on_the_second_try_and_every_replica_knows_it(
    tmp_path: Path, mongo_uri: str, db: Database
) -> None:
    async with gateway_with(tmp_path, mongo_uri, db) as first:
        missing = await send(first, {"extensions": apq(sha(TIERS))})
        assert code(missing) == "PERSISTED_QUERY_NOT_FOUND"
        assert missing["errors"][0]["message"] == "PersistedQueryNotFound"
        registered = await send(first, {"query": TIERS, "extensions": apq(sha(TIERS))})
        assert [t["code"] for t in registered["data"]["tiers"]][0] == "MEMBER"
        stored = await db["persisted_queries"].find_one({"_id": sha(TIERS)})
        assert stored["query"] == TIERS and not stored["allowListed"] and stored["expiresAt"]  # a cache entry
    async with gateway_with(tmp_path, mongo_uri, db) as second:  # another replica, a cold cache
        by_hash = await send(second, {"extensions": apq(sha(TIERS))})
        assert by_hash["data"] == registered["data"]
        params = {"extensions": json.dumps(apq(sha(TIERS)))}
        by_get = (await second.get("/graphql", params=params)).json()
        assert by_get["data"] == registered["data"]


async def test_apq_refuses_a_wrong_hash_and_does_not_register_invalid_documents(
    tmp_path: Path, mongo_uri: str, db: Database
) -> None:
    async with gateway_with(tmp_path, mongo_uri, db) as http:
        wrong = await send(http, {"query": TIERS, "extensions": apq(sha("something else"))})
        assert code(wrong) == "PERSISTED_QUERY_HASH_MISMATCH"
        assert code(await send(http, {"extensions": apq("not-a-hash")})) == "PERSISTED_QUERY_INVALID"
        invalid = "{ tiers { nope } }"
        assert (
            code(await send(http, {"query": invalid, "extensions": apq(sha(invalid))})) == "GRAPHQL_VALIDATION_FAILED"
        )
        assert code(await send(http, {"extensions": apq(sha(invalid))})) == "PERSISTED_QUERY_NOT_FOUND"


async def test_production_partners_run_registered_operations_only(
    tmp_path: Path, mongo_uri: str, db: Database, services: Services
) -> None:
    partner = await add_partner(services, "shop")
    operation = 'query Me { partner(id: "shop") { id name } }'
    async with gateway_with(tmp_path, mongo_uri, db, environment="production") as http:
        key = {"x-api-key": partner.api_key}
        assert code(await send(http, {"query": operation}, **key)) == "PERSISTED_QUERY_NOT_IN_LIST"
        # a partner cannot register its own operations through APQ either
        attempt = await send(http, {"query": operation, "extensions": apq(sha(operation))}, **key)
        assert code(attempt) == "PERSISTED_QUERY_NOT_IN_LIST"
        # members and anonymous callers are not restricted by default
        member = {"authorization": f"Bearer {token(Role.MEMBER, 'm-1')}"}
        assert code(await send(http, {"query": TIERS}, **member)) is None
        assert code(await send(http, {"query": TIERS})) is None
        # an APQ registration by an unrestricted caller does not allow-list the text
        await send(http, {"query": operation, "extensions": apq(sha(operation))})
        assert code(await send(http, {"extensions": apq(sha(operation))}, **key)) == "PERSISTED_QUERY_NOT_IN_LIST"

        document = tmp_path / "shop.graphql"
        document.write_text(operation)
        env = {
            "LOYALTY_MONGODB_URI": mongo_uri,
            "LOYALTY_DATABASE": db.db.name,
            "LOYALTY_JWT_SECRET": JWT_SECRET,
            "LOYALTY_DATA_DIR": str(tmp_path),
        }
        result = run_cli("persist-queries", str(document), env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[0] == sha(operation)

        by_text = await send(http, {"query": operation}, **key)
        assert by_text["data"]["partner"]["id"] == "shop"
        by_hash = await send(http, {"extensions": apq(sha(operation))}, **key)
        assert by_hash["data"] == by_text["data"]
        stored = await db["persisted_queries"].find_one({"_id": sha(operation)})
        assert stored["allowListed"] and "expiresAt" not in stored  # allow-listed for good
        await send(http, {"query": operation, "extensions": apq(sha(operation))})  # an APQ re-registration
        assert "expiresAt" not in await db["persisted_queries"].find_one({"_id": sha(operation)})


async def test_anonymous_callers_can_be_restricted_too(tmp_path: Path, mongo_uri: str, db: Database) -> None:
    async with gateway_with(
        tmp_path, mongo_uri, db, environment="production", persisted_queries_only="partner,anonymous"
    ) as http:
        assert code(await send(http, {"query": TIERS})) == "PERSISTED_QUERY_NOT_IN_LIST"
        member = {"authorization": f"Bearer {token(Role.MEMBER, 'm-1')}"}
        assert code(await send(http, {"query": TIERS}, **member)) is None


def test_persist_queries_registers_nothing_when_one_operation_is_invalid(tmp_path: Path, mongo_uri: str) -> None:
    good = tmp_path / "good.graphql"
    good.write_text(TIERS + "\nquery Gifts { gifts(first: 5) { edges { node { id } } } }\n")
    bad = tmp_path / "bad.graphql"
    bad.write_text("query Broken { tiers { nope } }")
    env = {
        "LOYALTY_MONGODB_URI": mongo_uri,
        "LOYALTY_DATABASE": "t_cli_persist",
        "LOYALTY_JWT_SECRET": JWT_SECRET,
        "LOYALTY_DATA_DIR": str(tmp_path),
    }
    refused = run_cli("persist-queries", str(good), str(bad), env=env)
    assert refused.returncode == 2 and "bad.graphql" in refused.stderr and "nope" in refused.stderr
    accepted = run_cli("persist-queries", str(good), env=env)
    assert accepted.returncode == 0, accepted.stderr
    lines = accepted.stdout.splitlines()
    assert len(lines) == 3  # the file as written, and each of its two operations alone
    assert lines[0].split()[0] == sha(good.read_text())
    assert {line.split()[1] for line in lines[1:]} == {"Tiers", "Gifts"}
