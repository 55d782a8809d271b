"""uvicorn, with a graceful goodbye for live subscribers."""

from __future__ import annotations

import socket

import uvicorn


class GatewayServer(uvicorn.Server):
    """On shutdown, subscribers first get ``1001 going away`` from the hub.

    uvicorn would otherwise cut WebSockets with 1012 before the app's lifespan
    shutdown runs; a client seeing 1001 knows to reconnect (to another replica)
    with its last position.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        services = getattr(getattr(self.config.app, "state", None), "services", None)
        if services is not None:
            await services.hub.close_all()
        await super().shutdown(sockets=sockets)
