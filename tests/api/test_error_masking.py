"""No PyMongo, pydantic or Python error text reaches a client: HTTP and WebSocket, every phase.

The gateway runs on a MongoDB client that is already closed, so every database call raises
PyMongo's own error, in authentication, in resolvers and in subscriptions.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_ws import aconnect_ws
from httpx_ws.transport import ASGIWebSocketTransport

from gateway.core.auth import Role
from gateway.core.clock import FrozenClock
from gateway.core.settings import Settings
from gateway.services import Services
from gateway.store.mongo import Database, create_client
from gateway.web.app import create_app
from tests.conftest import JWT_SECRET, token

LEAKS = ("pymongo", "MongoClient", "Traceback", "InvalidOperation", "Cannot use", "pydantic", "validation error")


def assert_clean(text: str) -> None:
    for leak in LEAKS:
        assert leak.lower() not in text.lower(), f"{leak!r} reached the client: {text[:300]}"


@pytest.fixture
async def broken_app(tmp_path: Path, mongo_uri: str, db: Database) -> AsyncIterator[Any]:
    settings = Settings(mongodb_uri=mongo_uri, jwt_secret=JWT_SECRET, data_dir=tmp_path)  # type: ignore[arg-type]
    client = create_client(mongo_uri)
    services = Services(settings=settings, db=Database(client, db.db.name), clock=FrozenClock(), jwt_secret=JWT_SECRET)
    application = create_app(settings, services=services, run_workers=False)
    async with application.router.lifespan_context(application):
        await client.close()
        yield application


async def test_http_paths_mask_driver_errors(broken_app: Any) -> None:
    transport = httpx.ASGITransport(app=broken_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        cases = [
            ({"query": "{ tiers { code } }"}, {}),
            ({"query": '{ member(id: "m") { id } }'}, {"authorization": f"Bearer {token(Role.ADMIN)}"}),
            ({"query": "{ tiers { code } }"}, {"x-api-key": "lgk_whatever"}),
            (
                {"query": 'mutation { updateProgram(input: {name: "x"}) { name } }'},
                {"authorization": f"Bearer {token(Role.ADMIN)}"},
            ),
        ]
        for payload, headers in cases:
            response = await http.post("/graphql", json=payload, headers=headers)
            assert_clean(response.text)
            assert response.status_code >= 200
            body = response.json()
            assert all(error["extensions"]["code"] for error in body["errors"]), body


async def test_websocket_paths_mask_driver_errors(broken_app: Any) -> None:
    async with httpx.AsyncClient(transport=ASGIWebSocketTransport(app=broken_app), base_url="http://gateway") as http:
        # an API key makes connection_init read MongoDB
        async with aconnect_ws("/graphql", http, subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send_text(json.dumps({"type": "connection_init", "payload": {"X-Api-Key": "lgk_x"}}))
            try:
                message = await ws.receive_text()
                assert_clean(message)
            except Exception as exc:  # the server closed the socket: its reason must be clean too
                assert_clean(str(exc))
        # a subscription whose resolver reads MongoDB
        admin = token(Role.ADMIN)
        async with aconnect_ws("/graphql", http, subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send_text(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {admin}"}}))
            assert json.loads(await ws.receive_text())["type"] == "connection_ack"
            query = 'subscription { balanceChanged(memberId: "m", after: 0) { position } }'
            await ws.send_text(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
            message = await ws.receive_text()
            assert_clean(message)
            payload = json.loads(message)["payload"]
            errors = payload if isinstance(payload, list) else payload["errors"]
            assert [e["extensions"]["code"] for e in errors] == ["INTERNAL_SERVER_ERROR"]
