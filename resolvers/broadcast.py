"""Broadcast delivery: the hub writes a shared event's frame straight to each subscribed socket.

A ``pointsActivity`` event reaches every dashboard subscription of the process. Through the
ordinary stream machinery each subscription costs, per event, a queue hand-off and a task
wake-up, then a chain of async generators (the source stream, graphql-core's event mapping,
Strawberry's result handling and extension hooks, the protocol handler) before its frame is
written. For an event type that is a ``SharedEvent`` the result of a document over an event is
the same for every subscriber of one audience (resolvers/shared_events.py), and its ``next``
frame differs from one subscription to the next only by the operation id.

So a broadcast subscription registers a ``Broadcast`` with the hub (``Subscriber.direct``).
While the subscription's task waits with nothing queued, the hub calls it with each change:
it looks up the shared result (running the document once per event and audience, with the
subscription's own executor), and has the connection write the frame at once
(``FrameWriter``, gateway/web/broadcast.py); no task wakes. What it cannot finish at once goes
the ordinary way, in order, through the subscription's queue and task:

- a change that arrives while the subscription is busy (its task holds an earlier change, or a
  frame is still waiting for the socket): queued, so each subscriber keeps its order, and a
  subscriber whose socket stops draining fills its bounded queue and is dropped with 4008;
- a result with errors: the task sends it through Strawberry, whose extensions mask and code
  them. An error-free result is sent as Strawberry sends it: ``{"data": ...}`` (the schema's
  extensions add no results to a stream event, and their stream hooks look only at errors;
  tests/streams/test_broadcast.py compares the two paths byte for byte).

Authorization is unchanged: the resolver checks the caller before the stream starts, and the
shared result is keyed by the caller's audience. Cleanup is the stream's: ``complete``, a
disconnect or a drop ends the task, which unsubscribes from the hub; the writer writes nothing
for an operation that is no longer registered on its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any, Protocol

from gateway.events.hub import Change, Topic
from gateway.events.streams import live_changes
from resolvers.context import Info
from resolvers.shared_events import SharedEvent

log = logging.getLogger(__name__)


class FrameWriter(Protocol):
    def write_next(self, data: dict[str, Any]) -> asyncio.Future[None] | None:
        """Write this operation's ``next`` frame with ``data`` now; a future for the rest when the
        socket made the write wait, None when it is done (or the operation is gone)."""


# The frame writer of the operation whose task is running (set by the WebSocket handler).
OPERATION_WRITER: ContextVar[FrameWriter | None] = ContextVar("operation_writer", default=None)


class Broadcast:
    """One subscription's direct delivery (see the module docstring)."""

    __slots__ = ("name", "convert", "accept", "writer", "executor", "key", "inflight")

    def __init__(
        self,
        name: str,
        convert: Callable[[Any], SharedEvent],
        writer: FrameWriter,
        accept: Callable[[Change], bool] | None = None,
    ) -> None:
        self.name = name
        self.convert = convert
        self.accept = accept
        self.writer = writer
        self.executor: Any = None
        self.key: tuple[Any, ...] | None = None  # None: not (or no longer) delivering directly
        self.inflight: asyncio.Future[None] | None = None

    def bind_executor(self, executor: Any) -> None:
        self.executor = executor
        self.key = executor.shared_key()

    def __call__(self, change: Change) -> bool:
        """From the hub: deliver now (True) or leave the change to the subscription's task (False)."""
        if self.inflight is not None or self.key is None:
            return False
        try:
            if self.accept is not None and not self.accept(change):
                return True
            data = self.render(change)
            if data is None:
                return False
            self._written(self.writer.write_next(data))
        except Exception:
            # The ordinary path meets the same failure and reports it (a masked error, logged).
            log.debug("direct delivery failed; the subscription continues on the ordinary path", exc_info=True)
            self.key = None
            return False
        return True

    def render(self, change: Change) -> dict[str, Any] | None:
        """The shared result's data for this subscription, None when it must go through Strawberry."""
        if self.key is None:
            return None
        view = change.view(self.name, self.convert)
        result = getattr(view, "__dict__", {}).get("_shared_results", {}).get(self.key)
        if result is None:
            result = self.executor.build_per_event_executor(view).execute_operation(False)
            if inspect.isawaitable(result):  # a field that is not plain data: not shared after all
                self.key = None
                _discard(result)
                return None
        if result.errors:
            return None
        data: dict[str, Any] = result.data
        return data

    async def settle(self) -> None:
        """Let a frame still waiting for the socket go first (order)."""
        if self.inflight is not None:
            with contextlib.suppress(Exception):
                await self.inflight

    async def deliver(self, change: Change) -> Any:
        """From the subscription's task: write the change's frame (None), or return its view for Strawberry."""
        await self.settle()
        if self.accept is not None and not self.accept(change):
            return None
        data = self.render(change)
        if data is None:
            return change.view(self.name, self.convert)
        pending = self.writer.write_next(data)
        if pending is not None:
            await pending
        return None

    def close(self) -> None:
        self.key = None
        self.executor = None  # the subscription's executor (and its context) goes with the operation
        if self.inflight is not None:
            self.inflight.cancel()

    def _written(self, pending: asyncio.Future[None] | None) -> None:
        if pending is not None:
            self.inflight = pending
            pending.add_done_callback(self._done)

    def _done(self, pending: asyncio.Future[None]) -> None:
        if self.inflight is pending:
            self.inflight = None
        if not pending.cancelled() and pending.exception() is not None:
            log.debug("a direct frame was not written: %r", pending.exception())


class BroadcastStream:
    """The source stream of a broadcast subscription: yields only what Strawberry must send.

    graphql-core hands it the subscription's executor (``SharedEventExecutor.cancellable_iterable``)."""

    def __init__(self, changes: AsyncIterator[Change], broadcast: Broadcast) -> None:
        self.broadcast = broadcast
        self.events = self._events(changes)

    def bind_executor(self, executor: Any) -> None:
        self.broadcast.bind_executor(executor)

    def __aiter__(self) -> BroadcastStream:
        return self

    def __anext__(self) -> Any:
        return self.events.__anext__()

    async def aclose(self) -> None:
        await self.events.aclose()

    async def _events(self, changes: AsyncIterator[Change]) -> AsyncGenerator[Any, None]:
        try:
            async for change in changes:
                view = await self.broadcast.deliver(change)
                if view is not None:
                    yield view
        finally:
            self.broadcast.close()
            aclose = getattr(changes, "aclose", None)
            if aclose is not None:
                await aclose()


def broadcast(
    info: Info,
    topic: Topic,
    name: str,
    convert: Callable[[Any], SharedEvent],
    accept: Callable[[Change], bool] | None = None,
) -> Any:
    """The live events of ``topic`` as ``convert`` views, delivered directly where the transport
    allows it (a graphql-transport-ws operation); elsewhere the plain stream of views. (An async
    iterator of views: ``Any`` to stand for the resolver's ``AsyncGenerator[<view type>, None]``.)"""
    services = info.context.services
    closer = getattr(info.context, "close_soon", None)
    writer = OPERATION_WRITER.get()
    if writer is None:
        changes = live_changes(services, topic, closer)
        return views((c async for c in changes if accept is None or accept(c)), name, convert)
    delivery = Broadcast(name, convert, writer, accept)
    return BroadcastStream(live_changes(services, topic, closer, delivery), delivery)


async def views(source: AsyncIterator[Change], name: str, convert: Callable[[Any], Any]) -> AsyncGenerator[Any, None]:
    """Convert each change once per process (cached on the change), not per subscriber."""
    async for change in source:
        yield change.view(name, convert)


def _discard(result: Any) -> None:
    """Let an execution that turned out asynchronous finish on its own (its result is not used)."""
    task = asyncio.ensure_future(result)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
