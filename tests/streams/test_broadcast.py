"""Broadcast delivery (resolvers/broadcast.py): the hub writes a shared event's frame straight to
each subscribed socket. The frames are the ones the ordinary Strawberry path sends, byte for byte;
a subscriber that is busy or whose socket backs up gets its events through its queue, in order;
nothing is written for an operation after its ``complete``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from typing import Any

from gateway.core.auth import Principal, Role
from gateway.core.settings import Settings
from gateway.services import Services
from gateway.web.broadcast import start_now
from gateway.web.graphql_view import SocketContext, encode_json
from resolvers.schema import schema
from tests.conftest import token
from tests.support.stream_helpers import Gateway, gateway, ledger_document, tiny_receive_buffer_socket, ws_client

ACTIVITY = "subscription { pointsActivity { id kind points availableDelta sourceType } }"
ADMIN = Principal(role=Role.ADMIN, subject="admin")


async def _wait_waiting(instance: Gateway, count: int) -> None:
    """Until ``count`` subscriptions are registered and their tasks wait for changes."""
    hub = instance.services.hub
    while sum(s.waiting for group in hub.topics.values() for s in group) < count or not hub.ready.is_set():
        await asyncio.sleep(0.005)


def _frame(op_id: str, result: Any) -> str:
    """What Strawberry's graphql-transport-ws handler sends for one stream result."""
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    return encode_json({"id": op_id, "type": "next", "payload": payload}).decode()


async def test_a_direct_frame_is_the_frame_of_the_ordinary_path(settings: Settings, services: Services) -> None:
    hub = services.hub
    async with gateway(settings, services) as gw, ws_client(gw.url, token(Role.ADMIN, "admin")) as client:
        op_id = await client.subscribe(ACTIVITY)
        # The same document, run in process: no WebSocket, so Strawberry's ordinary stream path.
        context = SocketContext(services=services, principal=ADMIN)
        ordinary = await schema.subscribe(ACTIVITY, context_value=context)
        first = asyncio.ensure_future(anext(ordinary))  # type: ignore[arg-type]
        await _wait_waiting(gw, 2)
        before = hub.delivered_at_once
        good = ledger_document("m1", 1, points=7)
        await services.db.ledger.insert_one(good)
        assert await client.connection.recv() == _frame(op_id, await first)
        assert hub.delivered_at_once == before + 1  # the socket's subscription, not the in-process one
        # A result with errors (a field that does not serialize) goes the ordinary way, masked and coded.
        second = asyncio.ensure_future(anext(ordinary))  # type: ignore[arg-type]
        await _wait_waiting(gw, 2)
        bad = ledger_document("m1", 2) | {"points": "ten"}
        await services.db.ledger.insert_one(bad)
        expected = await second
        assert expected.errors
        assert await client.connection.recv() == _frame(op_id, expected)
        assert hub.delivered_at_once == before + 1
        await ordinary.aclose()  # type: ignore[attr-defined]


async def test_after_complete_nothing_more_is_written_for_that_id(settings: Settings, services: Services) -> None:
    hub = services.hub
    async with gateway(settings, services) as gw, ws_client(gw.url, token(Role.DASHBOARD, "board")) as client:
        await client.send({"id": "a", "type": "subscribe", "payload": {"query": ACTIVITY}})
        await _wait_waiting(gw, 1)
        await services.db.ledger.insert_one(ledger_document("m1", 1))
        assert (await client.receive())["id"] == "a"
        await client.send({"id": "a", "type": "complete"})
        while hub.subscriber_count():
            await asyncio.sleep(0.005)
        # The id is free again: the new operation gets each event once, the old one nothing.
        await client.send({"id": "a", "type": "subscribe", "payload": {"query": ACTIVITY}})
        await _wait_waiting(gw, 1)
        doc = ledger_document("m1", 2)
        await services.db.ledger.insert_one(doc)
        message = await client.receive()
        assert (message["id"], message["payload"]["data"]["pointsActivity"]["id"]) == ("a", str(doc["_id"]))
        await client.send({"type": "ping"})
        assert await client.receive() == {"type": "pong"}  # no second frame for the event


async def test_a_disconnect_frees_the_subscriptions_and_deliveries(settings: Settings, services: Services) -> None:
    hub = services.hub
    async with gateway(settings, services) as gw:
        async with ws_client(gw.url, token(Role.DASHBOARD, "board")) as client:
            await client.subscribe(ACTIVITY)
            await client.subscribe("subscription { pointsActivity { id } }")
            await _wait_waiting(gw, 2)
            # Each delivery holds its subscription's executor, and through it the connection's context.
            deliveries = [weakref.ref(s.direct.executor) for group in hub.topics.values() for s in group]
            assert len(deliveries) == 2 and all(d() is not None for d in deliveries)
        async with asyncio.timeout(10):  # a guard against hanging, not a measurement
            while hub.subscriber_count():
                await asyncio.sleep(0.005)
        for _ in range(100):  # the connection's handler finishes after the hub let go
            gc.collect()
            if all(d() is None for d in deliveries):
                break
            await asyncio.sleep(0.01)
        assert all(d() is None for d in deliveries)


async def test_a_backed_up_socket_gets_every_event_in_order_through_its_queue(
    settings: Settings, services: Services
) -> None:
    """The socket of the slow client stops draining: frames wait for it, later events queue, and once
    it reads it has every event once, in order (the queue is large enough here not to drop it)."""
    settings = settings.model_copy(update={"subscriber_queue_size": 10_000})
    services.settings = settings
    hub = services.hub
    count = 10_000  # ~1.7 MB of frames: more than the socket and client buffers hold (~1.3 MB here)
    async with gateway(settings, services, send_buffer=8192) as gw:
        admin = token(Role.ADMIN, "admin")
        sock = tiny_receive_buffer_socket(gw.port)
        async with ws_client(gw.url, admin) as reader, ws_client(gw.url, admin, sock=sock, max_queue=1) as slow:
            await slow.subscribe(ACTIVITY)
            await reader.subscribe(ACTIVITY)
            await _wait_waiting(gw, 2)
            before = hub.delivered_at_once
            docs = [ledger_document(f"m{i}", 1) for i in range(count)]
            await services.db.ledger.insert_many(docs)
            sent = [str(d["_id"]) for d in docs]
            assert [(await reader.next_data())["pointsActivity"]["id"] for _ in docs] == sent
            assert [(await slow.next_data())["pointsActivity"]["id"] for _ in docs] == sent
            assert hub.delivered_at_once - before < 2 * count  # the slow one's socket did back up
            assert hub.dropped_slow == 0


class _Gate:
    def __init__(self) -> None:
        self.opened = asyncio.get_running_loop().create_future()
        self.steps: list[str] = []

    async def write(self, wait: bool, fail: str | None = None) -> None:
        self.steps.append("start")
        try:
            if wait:
                self.steps.append(await self.opened)
            if fail is not None:
                raise RuntimeError(fail)
            self.steps.append("end")
        finally:
            self.steps.append("finally")


async def test_start_now_runs_a_write_that_does_not_wait_in_place() -> None:
    gate = _Gate()
    assert start_now(gate.write(wait=False)) is None
    assert gate.steps == ["start", "end", "finally"]


async def test_start_now_hands_a_write_that_waits_to_a_task() -> None:
    gate = _Gate()
    rest = start_now(gate.write(wait=True))
    assert rest is not None and gate.steps == ["start"]
    gate.opened.set_result("writable")
    await rest
    assert gate.steps == ["start", "writable", "end", "finally"]


async def test_start_now_raises_or_reports_errors_and_forwards_cancellation() -> None:
    gate = _Gate()
    try:
        start_now(gate.write(wait=False, fail="at once"))
    except RuntimeError as exc:
        assert str(exc) == "at once"
    else:
        raise AssertionError("the error was swallowed")
    later = _Gate()
    rest = start_now(later.write(wait=True, fail="later"))
    assert rest is not None
    later.opened.set_result("writable")
    try:
        await rest
    except RuntimeError as exc:
        assert str(exc) == "later"
    else:
        raise AssertionError("the error was swallowed")
    cancelled = _Gate()
    rest = start_now(cancelled.write(wait=True))
    assert rest is not None
    await asyncio.sleep(0)
    rest.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await rest
    assert rest.cancelled() and cancelled.steps == ["start", "finally"]
