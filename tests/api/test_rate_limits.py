"""Rate limits per principal, counted in MongoDB across replicas; bad credentials limited harder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from httpx_ws import aconnect_ws
from httpx_ws.transport import ASGIWebSocketTransport

from gateway.core.auth import Role
from gateway.store.mongo import Database
from tests.conftest import token
from tests.support.gateways import app_with, gateway_with

TIERS = {"query": "{ tiers { code } }"}


def bearer(subject: str, role: Role = Role.MEMBER) -> dict[str, str]:
    return {"authorization": f"Bearer {token(role, subject)}"}


async def test_anonymous_callers_are_limited_per_address_across_replicas(
    tmp_path: Path, mongo_uri: str, db: Database
) -> None:
    limits = {"rate_limit_anonymous": 3}
    async with (
        gateway_with(tmp_path, mongo_uri, db, client_address="10.0.0.1", **limits) as first,
        gateway_with(tmp_path, mongo_uri, db, client_address="10.0.0.1", **limits) as second,
        gateway_with(tmp_path, mongo_uri, db, client_address="10.0.0.2", **limits) as elsewhere,
    ):
        assert (await first.post("/graphql", json=TIERS)).status_code == 200
        assert (await second.post("/graphql", json=TIERS)).status_code == 200
        assert (await first.post("/graphql", json=TIERS)).status_code == 200
        refused = await second.post("/graphql", json=TIERS)  # the fourth, on the other replica
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        error = refused.json()["errors"][0]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert error["extensions"]["retryAfter"] == int(refused.headers["retry-after"])
        assert (await elsewhere.post("/graphql", json=TIERS)).status_code == 200


async def test_members_are_limited_per_member_whatever_their_address(
    tmp_path: Path, mongo_uri: str, db: Database
) -> None:
    async with (
        gateway_with(tmp_path, mongo_uri, db, client_address="10.0.0.1", rate_limit_member=2) as one,
        gateway_with(tmp_path, mongo_uri, db, client_address="10.0.0.9", rate_limit_member=2) as other,
    ):
        statuses = [
            (await one.post("/graphql", json=TIERS, headers=bearer("alice"))).status_code,
            (await other.post("/graphql", json=TIERS, headers=bearer("alice"))).status_code,
            (await other.post("/graphql", json=TIERS, headers=bearer("alice"))).status_code,
        ]
        assert statuses == [200, 200, 429]
        assert (await one.post("/graphql", json=TIERS, headers=bearer("bob"))).status_code == 200
        # the admin budget is a different one
        assert (await one.post("/graphql", json=TIERS, headers=bearer("ops", Role.ADMIN))).status_code == 200


async def test_bad_credentials_are_limited_harder_and_then_not_even_checked(
    tmp_path: Path, mongo_uri: str, db: Database
) -> None:
    async with (
        gateway_with(tmp_path, mongo_uri, db, client_address="10.6.6.6", rate_limit_failed_auth=3) as attacker,
        gateway_with(tmp_path, mongo_uri, db, client_address="10.0.0.1", rate_limit_failed_auth=3) as bystander,
    ):
        bad = {"authorization": "Bearer not-a-token"}
        responses = [await attacker.post("/graphql", json=TIERS, headers=bad) for _ in range(5)]
        codes = [r.json()["errors"][0]["extensions"]["code"] for r in responses]
        assert codes[:3] == ["UNAUTHENTICATED"] * 3
        assert codes[3:] == ["RATE_LIMITED"] * 2
        assert all(r.status_code == 429 and r.headers["retry-after"] for r in responses[3:])
        # a valid credential from that address is refused without being checked, until the window ends
        good = await attacker.post("/graphql", json=TIERS, headers=bearer("alice"))
        assert good.status_code == 429
        # unknown API keys count the same way; another address is not affected
        assert (await bystander.post("/graphql", json=TIERS, headers=bearer("alice"))).status_code == 200
        assert (await bystander.post("/graphql", json=TIERS)).status_code == 200


async def _connect(http: httpx.AsyncClient, member: str) -> Any:
    ws = aconnect_ws("/graphql", http, subprotocols=["graphql-transport-ws"])
    session = await ws.__aenter__()
    await session.send_text(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token(Role.MEMBER, member)}"}})
    )
    assert json.loads(await session.receive_text())["type"] == "connection_ack"
    return ws, session


async def _subscribe(session: Any, op_id: str, member: str) -> None:
    query = f'subscription {{ tierChanged(memberId: "{member}") {{ memberId }} }}'
    await session.send_text(json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": query}}))


async def test_subscriptions_are_limited_per_connection_and_per_member(
    tmp_path: Path, mongo_uri: str, db: Database
) -> None:
    options = {"max_subscriptions_per_connection": 2, "max_subscriptions_per_member": 3}
    async with (
        app_with(tmp_path, mongo_uri, db, **options) as app,
        httpx.AsyncClient(transport=ASGIWebSocketTransport(app=app), base_url="http://gateway") as http,
    ):
        first_ws, first = await _connect(http, "alice")
        await _subscribe(first, "1", "alice")
        await _subscribe(first, "2", "alice")
        await _subscribe(first, "3", "alice")
        refused = json.loads(await first.receive_text())
        assert refused["id"] == "3" and refused["type"] == "error"
        assert refused["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"

        second_ws, second = await _connect(http, "alice")
        await _subscribe(second, "1", "alice")  # alice's third
        await _subscribe(second, "2", "alice")  # her fourth: over the per-member limit
        refused = json.loads(await second.receive_text())
        assert refused["id"] == "2" and refused["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"

        # completing one gives the member's slot back (once the first connection has handled it:
        # two connections' messages are not ordered, so wait for its pong)
        await first.send_text(json.dumps({"id": "1", "type": "complete"}))
        await first.send_text(json.dumps({"type": "ping"}))
        assert json.loads(await first.receive_text())["type"] == "pong"
        await _subscribe(second, "3", "alice")
        await second.send_text(json.dumps({"type": "ping"}))
        assert json.loads(await second.receive_text())["type"] == "pong"  # no error before the pong
        await second_ws.__aexit__(None, None, None)
        await first_ws.__aexit__(None, None, None)
