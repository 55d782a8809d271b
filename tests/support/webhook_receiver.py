"""A real HTTP receiver for webhook tests: uvicorn on loopback, in the test's event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.domain.notifications import verify
from gateway.store.embedded_mongod import free_port
from tests.support.stream_helpers import InProcessServer


@dataclass
class Receiver:
    """Records every delivery; answers ``status`` (set it to 500 to make deliveries fail)."""

    port: int
    secret: str = ""
    status: int = 200
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        timestamp = int(request.headers["x-loyalty-timestamp"])
        self.deliveries.append(
            {
                "headers": dict(request.headers),
                "event": orjson.loads(body),
                "verified": verify(
                    self.secret, timestamp, body, request.headers["x-loyalty-signature"], int(time.time())
                ),
                "answered": self.status,
            }
        )
        return Response(status_code=self.status)


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver(port=free_port())
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    server = InProcessServer(uvicorn.Config(app, host="127.0.0.1", port=receiver.port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
