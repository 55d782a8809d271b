"""Real gateways on real ports and a real graphql-transport-ws client, for stream tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import uvicorn
from bson import ObjectId
from websockets.asyncio.client import ClientConnection, connect

from gateway.core.settings import Settings
from gateway.services import Services
from gateway.store.embedded_mongod import free_port
from gateway.web.app import create_app
from gateway.web.server import GatewayServer

PROTOCOL = "graphql-transport-ws"


class InProcessServer(GatewayServer):
    """Several servers share the test's event loop; signals stay with pytest."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


class Gateway:
    """One gateway replica: uvicorn serving create_app() with its workers, in this event loop."""

    def __init__(self, settings: Settings, services: Services, *, send_buffer: int | None = None) -> None:
        self.services = services
        self.port = free_port()
        self.sockets: list[socket.socket] | None = None
        if send_buffer is not None:
            # Accepted connections inherit a fixed send buffer: a stalled client backs up quickly.
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
            listener.bind(("127.0.0.1", self.port))
            self.sockets = [listener]
        app = create_app(settings, services=services, run_workers=True)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="on", log_level="warning")
        self.server = InProcessServer(config)
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    async def start(self) -> Gateway:
        self.task = asyncio.create_task(self.server.serve(sockets=self.sockets))
        while not self.server.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)
        await self.services.hub.wait_ready()
        return self

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.server.should_exit = True
            await self.task


@asynccontextmanager
async def gateway(settings: Settings, services: Services, **options: Any) -> AsyncIterator[Gateway]:
    instance = await Gateway(settings, services, **options).start()
    try:
        yield instance
    finally:
        await instance.stop()


class WsClient:
    """A graphql-transport-ws client speaking the protocol message by message."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.ids = 0

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.connection.recv(), timeout)
        return json.loads(raw)

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self.ids += 1
        op_id = str(self.ids)
        await self.send({"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables or {}}})
        return op_id

    async def next_data(self, timeout: float = 10.0) -> dict[str, Any]:
        """The data of the next ``next`` message; anything else fails the test."""
        message = await self.receive(timeout)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        return message["payload"]["data"]

    async def close_code(self, timeout: float = 10.0) -> tuple[int | None, str | None]:
        """Read until the server closes; returns (code, reason)."""
        try:
            async with asyncio.timeout(timeout):
                async for _ in self.connection:
                    pass
        except Exception:  # the connection ended abnormally
            pass
        return self.connection.close_code, self.connection.close_reason


@asynccontextmanager
async def ws_client(url: str, token: str | None = None, **options: Any) -> AsyncIterator[WsClient]:
    """Connected and acknowledged (connection_init with the Authorization payload)."""
    async with connect(url, subprotocols=[PROTOCOL], **options) as connection:  # type: ignore[list-item]
        client = WsClient(connection)
        await client.send({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"} if token else {}})
        ack = await client.receive()
        assert ack["type"] == "connection_ack", ack
        yield client


def tiny_receive_buffer_socket(port: int) -> socket.socket:
    """A client socket with a tiny receive window, so a client that stops reading stalls fast."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def ledger_document(member_id: str, seq: int, points: int = 10) -> dict[str, Any]:
    """A raw ledger entry shaped as gateway.ledger.posting writes it, for bulk stream load in tests."""
    balances = {"available": seq * points, "pending": 0, "lifetimeEarned": seq * points, "spent": 0, "expired": 0}
    return {
        "_id": ObjectId(),
        "memberId": member_id,
        "seq": seq,
        "kind": "GRANT",
        "points": points,
        "delta": {"available": points, "pending": 0, "lifetimeEarned": points, "spent": 0, "expired": 0},
        "reason": "load",
        "source": {"type": "TEST", "id": f"load-{seq}"},
        "lots": [],
        "balancesAfter": balances,
        "createdAt": datetime.now(UTC),
        "idempotencyKey": None,
    }
