"""uvicorn, with a graceful goodbye for live subscribers and a collector sized for serving."""

from __future__ import annotations

import gc
import socket

import uvicorn

# Young-generation threshold while serving: a request allocates and frees thousands of objects,
# so at CPython's default (700 allocations not yet freed) the collector ran during most requests,
# scanning objects still in use and promoting them, which then triggered full collections.
YOUNG_THRESHOLD = 7000


def settle_heap() -> None:
    """Once the app is up: freeze what startup built, and collect the young generation less often.

    Everything alive after startup (the schema, the services, imported modules) lives as long as
    the process, yet every full collection walked all of it again. ``gc.freeze`` moves it out of
    the collector's sight (reference counting still frees it). Requests make no reference cycles
    (resolvers/executor.py), so almost everything they allocate is freed by reference counting;
    the collector is still there for whatever cycles remain, only run every ``YOUNG_THRESHOLD``
    outstanding allocations instead of 700.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


class GatewayServer(uvicorn.Server):
    """On shutdown, subscribers first get ``1001 going away`` from the hub.

    uvicorn would otherwise cut WebSockets with 1012 before the app's lifespan
    shutdown runs; a client seeing 1001 knows to reconnect (to another replica)
    with its last position.
    """

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        settle_heap()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        services = getattr(getattr(self.config.app, "state", None), "services", None)
        if services is not None:
            await services.hub.close_all()
        await super().shutdown(sockets=sockets)
