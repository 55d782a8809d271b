"""Writing a broadcast's frames from the hub's loop, without a task per frame (resolvers/broadcast.py).

A WebSocket write through ASGI is a coroutine (Starlette, the middleware, uvicorn), but it only
waits when the socket's buffer is full: uvicorn waits for the transport to become writable
again. ``start_now`` runs such a coroutine at once, in the caller's loop iteration; if it does
have to wait, the rest continues as a task, which the caller gets back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation


def start_now(coroutine: Coroutine[Any, Any, None]) -> asyncio.Future[None] | None:
    """Run ``coroutine`` until it finishes (None) or first waits (a task finishing it). Its
    exceptions before the first wait are raised here."""
    try:
        waiting_for = coroutine.send(None)
    except StopIteration:
        return None
    return asyncio.ensure_future(_finish(coroutine, waiting_for))


class _Yield:
    """Hands what the coroutine waits for to the task running ``_finish``."""

    __slots__ = ("waiting_for",)

    def __init__(self, waiting_for: Any) -> None:
        self.waiting_for = waiting_for

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.waiting_for)


async def _finish(coroutine: Coroutine[Any, Any, None], waiting_for: Any) -> None:
    """Drive the rest of ``coroutine`` as the task does: resume it when what it waits for is done,
    throw into it what the task would (the awaited future's error, a cancellation)."""
    while True:
        try:
            value = await _Yield(waiting_for)
        except BaseException as exc:  # noqa: BLE001 - forwarded to the coroutine, as a task would
            try:
                waiting_for = coroutine.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting_for = coroutine.send(value)
            except StopIteration:
                return


class NextFrames:
    """The ``next`` frames of one graphql-transport-ws operation, for its broadcast delivery."""

    __slots__ = ("handler", "operation", "id_json")

    def __init__(self, handler: BaseGraphQLTransportWSHandler[Any, Any], operation: Operation[Any, Any]) -> None:
        self.handler = handler
        self.operation = operation
        self.id_json: str | None = None

    def write_next(self, data: dict[str, Any]) -> asyncio.Future[None] | None:
        operation = self.operation
        if operation.completed or self.handler.operations.get(operation.id) is not operation:
            return None  # completed or unsubscribed: nothing more for this id
        websocket: Any = self.handler.websocket  # gateway.web.graphql_view.GatewayWebSocketAdapter
        if self.id_json is None:
            self.id_json = websocket.encode_id(operation.id)
        return start_now(websocket.send_next(self.id_json, data))
