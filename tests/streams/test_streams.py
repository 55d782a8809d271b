"""Live subscriptions end to end: real uvicorn gateways, real WebSockets, real change streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from bson import ObjectId

from gateway.core.auth import Role
from gateway.core.settings import Settings
from gateway.events.hub import Hub
from gateway.events.streams import _dispatch, route, run_watcher
from gateway.services import Services
from tests.conftest import JWT_SECRET, token
from tests.support.ledger_helpers import add_member, earn, spend
from tests.support.stream_helpers import Gateway, gateway, ledger_document, tiny_receive_buffer_socket, ws_client

BALANCE = """
subscription($m: String!, $after: Int) {
  balanceChanged(memberId: $m, after: $after) {
    memberId position balances { available spent lifetimeEarned }
    entry { id kind points position balancesAfter { available } }
  }
}"""
ACTIVITY = "subscription { pointsActivity { id kind points availableDelta sourceType } }"


@pytest.fixture
async def replicas(settings: Settings, services: Services, db, clock) -> AsyncIterator[tuple[Gateway, Gateway]]:  # noqa: ANN001
    """Two gateway replicas on the same database, each with its own services, hub and watcher."""
    other = Services(settings=settings, db=db, clock=clock, jwt_secret=JWT_SECRET)
    async with gateway(settings, services) as a, gateway(settings, other) as b:
        yield a, b


async def test_change_through_one_replica_reaches_a_subscriber_on_another(replicas, services: Services) -> None:
    a, b = replicas
    await add_member(services, "m1")
    async with ws_client(b.url, token(Role.MEMBER, "m1")) as client:
        await client.subscribe(BALANCE, {"m": "m1"})
        await asyncio.sleep(0)  # the subscription registers before the change is made
        await _wait_subscribers(b, 1)
        await earn(a.services.ledger, "m1", 120)
        event = (await client.next_data())["balanceChanged"]
        assert event["memberId"] == "m1"
        assert event["position"] == 1
        assert event["balances"] == {"available": 120, "spent": 0, "lifetimeEarned": 120}
        assert event["entry"]["kind"] == "GRANT" and event["entry"]["points"] == 120
        await spend(a.services.ledger, "m1", 20)
        event = (await client.next_data())["balanceChanged"]
        assert (event["position"], event["balances"]["available"], event["balances"]["spent"]) == (2, 100, 20)
        assert event["entry"]["balancesAfter"]["available"] == 100


async def test_reconnect_with_after_replays_missed_entries_exactly_once(replicas, services: Services) -> None:
    a, b = replicas
    await add_member(services, "m1")
    member = token(Role.MEMBER, "m1")
    async with ws_client(b.url, member) as client:
        await client.subscribe(BALANCE, {"m": "m1"})
        await _wait_subscribers(b, 1)
        for _ in range(3):
            await earn(services.ledger, "m1", 10)
        seen = [(await client.next_data())["balanceChanged"]["position"] for _ in range(3)]
    assert seen == [1, 2, 3]
    for _ in range(2):  # missed while disconnected
        await earn(services.ledger, "m1", 10)
    async with ws_client(a.url, member) as client:
        await client.subscribe(BALANCE, {"m": "m1", "after": 3})
        replayed = [(await client.next_data())["balanceChanged"] for _ in range(2)]
        assert [e["position"] for e in replayed] == [4, 5]
        assert [e["balances"]["available"] for e in replayed] == [40, 50]
        await earn(services.ledger, "m1", 10)
        assert (await client.next_data())["balanceChanged"]["position"] == 6


async def test_resume_while_changes_race_the_replay_has_no_gap_or_duplicate(replicas, services: Services) -> None:
    a, b = replicas
    await add_member(services, "m1")
    total = 40

    async def writer() -> None:
        for _ in range(total):
            await earn(a.services.ledger, "m1", 1)

    task = asyncio.create_task(writer())
    while await services.db.ledger.count_documents({"memberId": "m1"}) < 10:
        await asyncio.sleep(0.005)
    async with ws_client(b.url, token(Role.ADMIN, "admin")) as client:
        await client.subscribe(BALANCE, {"m": "m1", "after": 0})
        positions = [(await client.next_data())["balanceChanged"]["position"] for _ in range(total)]
    await task
    assert positions == list(range(1, total + 1))


async def test_without_after_only_new_changes_arrive(replicas, services: Services) -> None:
    a, _ = replicas
    await add_member(services, "m1")
    await earn(services.ledger, "m1", 5)
    async with ws_client(a.url, token(Role.MEMBER, "m1")) as client:
        await client.subscribe(BALANCE, {"m": "m1"})
        await _wait_subscribers(a, 1)
        await earn(services.ledger, "m1", 7)
        event = (await client.next_data())["balanceChanged"]
        assert (event["position"], event["balances"]["available"]) == (2, 12)


async def test_subscriptions_are_authorized(replicas, services: Services) -> None:
    a, _ = replicas
    await add_member(services, "m1")
    await add_member(services, "m2")
    async with ws_client(a.url, token(Role.MEMBER, "m1")) as client:
        op = await client.subscribe(BALANCE, {"m": "m2"})
        refused = await client.receive()
        assert refused["id"] == op and refused["type"] == "error", refused
        assert refused["payload"][0]["extensions"]["code"] == "FORBIDDEN"
        await client.subscribe(ACTIVITY)
        assert (await client.receive())["payload"][0]["extensions"]["code"] == "FORBIDDEN"
        await client.subscribe('subscription { tierChanged(memberId: "m2") { id } }')
        assert (await client.receive())["payload"][0]["extensions"]["code"] == "FORBIDDEN"
        # The connection stays usable for what the member may see.
        await client.subscribe(BALANCE, {"m": "m1"})
        await _wait_subscribers(a, 1)
        await earn(services.ledger, "m1", 3)
        assert (await client.next_data())["balanceChanged"]["position"] == 1
    async with ws_client(a.url) as anonymous:
        await anonymous.subscribe(BALANCE, {"m": "m1"})
        assert (await anonymous.receive())["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    async with ws_client(a.url, token(Role.DASHBOARD, "board")) as dashboard:
        await dashboard.subscribe(BALANCE, {"m": "m1"})
        assert (await dashboard.receive())["payload"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_bad_token_in_connection_init_closes_with_4403(replicas) -> None:
    from websockets.asyncio.client import connect

    a, _ = replicas
    async with connect(a.url, subprotocols=["graphql-transport-ws"]) as connection:  # type: ignore[list-item]
        await connection.send('{"type": "connection_init", "payload": {"Authorization": "Bearer nope"}}')
        with pytest.raises(Exception):  # noqa: B017 - the server closes the connection
            await asyncio.wait_for(connection.recv(), 10)
        assert (connection.close_code, connection.close_reason) == (4403, "Forbidden")


async def test_points_activity_for_dashboards_carries_no_member_identity(replicas, services: Services) -> None:
    a, b = replicas
    await add_member(services, "m1")
    async with ws_client(b.url, token(Role.DASHBOARD, "board")) as client:
        await client.subscribe(ACTIVITY)
        await _wait_subscribers(b, 1)
        result = await earn(a.services.ledger, "m1", 50)
        event = (await client.next_data())["pointsActivity"]
        assert event == {
            "id": str(result["entryId"]),
            "kind": "GRANT",
            "points": 50,
            "availableDelta": 50,
            "sourceType": "TEST",
        }


async def test_tier_redemption_and_stock_changes_stream(replicas, services: Services) -> None:
    a, b = replicas
    db = services.db
    now = datetime.now(UTC)
    gift_id = ObjectId()
    async with ws_client(b.url, token(Role.MEMBER, "m1")) as client:
        await client.subscribe('subscription { tierChanged(memberId: "m1") { memberId fromTier toTier direction } }')
        await client.subscribe('subscription { redemptionUpdated(memberId: "m1") { id giftId status points } }')
        await client.subscribe(
            "subscription($g: String!) { giftStockChanged(giftId: $g) { giftId stock soldOut } }", {"g": str(gift_id)}
        )
        await _wait_subscribers(b, 3)
        # A new gift is a stock event too. Inserted only now that the subscription exists, so its
        # event cannot race the subscription however far the watcher lags behind on a busy machine.
        await db["gifts"].insert_one({"_id": gift_id, "name": "Mug", "stock": 2, "listed": True})
        assert (await client.next_data())["giftStockChanged"] == {"giftId": str(gift_id), "stock": 2, "soldOut": False}
        await db["tier_changes"].insert_one(
            {
                "memberId": "m1",
                "fromTier": "MEMBER",
                "toTier": "SENIOR",
                "direction": "UP",
                "reason": "spend",
                "at": now,
            }
        )
        assert (await client.next_data())["tierChanged"] == {
            "memberId": "m1",
            "fromTier": "MEMBER",
            "toTier": "SENIOR",
            "direction": "UP",
        }
        order = await db["redemptions"].insert_one(
            {
                "memberId": "m1",
                "giftId": str(gift_id),
                "quantity": 1,
                "points": 300,
                "cashPaid": 0,
                "status": "PLACED",
                "createdAt": now,
                "updatedAt": now,
            }
        )
        placed = (await client.next_data())["redemptionUpdated"]
        assert (placed["id"], placed["status"]) == (str(order.inserted_id), "PLACED")
        await db["redemptions"].update_one({"_id": order.inserted_id}, {"$set": {"status": "FULFILLED"}})
        assert (await client.next_data())["redemptionUpdated"]["status"] == "FULFILLED"
        await db["gifts"].update_one({"_id": gift_id}, {"$set": {"name": "Big mug"}})  # not a stock change
        await db["gifts"].update_one({"_id": gift_id}, {"$inc": {"stock": -2}})
        assert (await client.next_data())["giftStockChanged"] == {"giftId": str(gift_id), "stock": 0, "soldOut": True}


async def test_a_stalled_subscriber_is_disconnected_and_others_keep_receiving(
    settings: Settings, services: Services
) -> None:
    from websockets.asyncio.client import connect

    settings = settings.model_copy(update={"subscriber_queue_size": 100})
    services.settings = settings
    hub = services.hub
    async with gateway(settings, services, send_buffer=8192) as a:
        admin = token(Role.ADMIN, "admin")
        sock = tiny_receive_buffer_socket(a.port)
        async with (
            ws_client(a.url, admin) as healthy,
            ws_client(a.url, admin, sock=sock, max_queue=1) as stalled,
        ):
            for _ in range(5):  # several subscriptions multiply the bytes queued for the stalled connection
                await stalled.subscribe(ACTIVITY)
            await healthy.subscribe(ACTIVITY)
            await _wait_subscribers(a, 6)
            sent: list[str] = []
            received: list[str] = []
            seq = 0
            # The healthy client reads every batch; the stalled one never reads, until it is dropped.
            while hub.dropped_slow == 0 and len(sent) < 20_000:
                docs = [ledger_document(f"m{i}", seq + 1) for i in range(50)]
                seq += 1
                await services.db.ledger.insert_many(docs)
                sent += [str(d["_id"]) for d in docs]
                received += [(await healthy.next_data())["pointsActivity"]["id"] for _ in docs]
            assert hub.dropped_slow >= 1
            assert received == sent
            # Still delivering to the healthy client after the drop.
            await services.db.ledger.insert_one(ledger_document("late", 1))
            assert (await healthy.next_data())["pointsActivity"]["kind"] == "GRANT"
            # The stalled client now reads: what was already in flight, then the close frame.
            delivered = 0
            while True:
                try:
                    message = await stalled.receive()
                except Exception:
                    break
                assert message["type"] == "next"
                delivered += 1
            assert delivered < 5 * len(sent)
            assert (stalled.connection.close_code, stalled.connection.close_reason) == (4008, "subscriber too slow")
        del connect


async def test_subscribers_get_going_away_when_the_gateway_stops(settings: Settings, services: Services) -> None:
    await add_member(services, "m1")
    a = await Gateway(settings, services).start()
    try:
        async with ws_client(a.url, token(Role.MEMBER, "m1")) as client:
            await client.subscribe(BALANCE, {"m": "m1"})
            await _wait_subscribers(a, 1)
            stopping = asyncio.create_task(a.stop())
            assert await client.close_code() == (1001, "going away")
            await stopping
    finally:
        await a.stop()


def test_route_sends_each_change_to_its_topics() -> None:
    entry = ledger_document("m1", 1)
    ledger = route({"ns": {"coll": "ledger"}, "operationType": "insert", "fullDocument": entry})
    assert [t for t, _ in ledger] == [("balance", "m1"), ("activity",)]
    gift = {"_id": "g1", "stock": 3}
    renamed = {"ns": {"coll": "gifts"}, "operationType": "update", "fullDocument": gift}
    assert route({**renamed, "updateDescription": {"updatedFields": {"name": "x"}}}) == []
    restocked = route({**renamed, "updateDescription": {"updatedFields": {"stock": 3}}})
    assert [t for t, _ in restocked] == [("gift", "g1")]
    deleted_meanwhile = {"ns": {"coll": "redemptions"}, "operationType": "update", "fullDocument": None}
    assert route(deleted_meanwhile) == []
    hub = Hub()
    subscriber = hub.subscribe(("balance", "m1"))
    _dispatch(hub, {"ns": {"coll": "ledger"}, "operationType": "insert", "fullDocument": {"no": "memberId"}})
    _dispatch(hub, {"ns": {"coll": "ledger"}, "operationType": "insert", "fullDocument": entry})
    assert subscriber.queue.qsize() == 1  # the malformed change was skipped, the next one delivered


async def _wait_subscribers(instance: Gateway, count: int) -> None:
    """Subscriptions register asynchronously after the subscribe message; wait for the hub to see them."""
    hub = instance.services.hub
    while hub.subscriber_count() < count or not hub.ready.is_set():
        await asyncio.sleep(0.005)


async def test_the_watcher_resumes_after_an_error_without_loss_or_repeat(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """Kill the watcher's getMore on the server: it resumes from its token; every entry arrives once."""
    hub = Hub()
    watcher = asyncio.create_task(run_watcher(services.db, hub, retry_delay=0.05))
    subscriber = hub.subscribe(("balance", "m1"))
    try:
        await hub.wait_ready()
        await services.db.ledger.insert_many([ledger_document("m1", seq) for seq in (1, 2)])
        killed = await _kill_change_stream_get_more(services, caplog)
        assert killed, "the watcher's getMore was never interrupted"
        await services.db.ledger.insert_many([ledger_document("m1", seq) for seq in (3, 4, 5)])
        seqs = [(await asyncio.wait_for(subscriber.get(), 10)).doc["seq"] for _ in range(5)]
        assert seqs == [1, 2, 3, 4, 5]
        await services.db.ledger.insert_one(ledger_document("m1", 6))
        assert (await asyncio.wait_for(subscriber.get(), 10)).doc["seq"] == 6
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def _kill_change_stream_get_more(services: Services, caplog: pytest.LogCaptureFixture) -> bool:
    """killOp the watcher's awaiting getMore until the watcher reports the failure.

    A getMore seen by $currentOp may end (its await time is over) before killOp reaches it; that
    kill is a no-op, so try again rather than conclude anything from it.
    """
    admin = services.db.client.admin
    pipeline = [
        {"$currentOp": {"allUsers": True}},
        {"$match": {"ns": f"{services.db.db.name}.$cmd", "command.getMore": {"$exists": True}}},
    ]
    for _ in range(500):
        for op in await (await admin.aggregate(pipeline)).to_list():
            await admin.command("killOp", op=op["opid"])
        await asyncio.sleep(0.02)
        if "change stream failed" in caplog.text:
            return True
    return False


async def test_subscribers_with_different_selections_of_one_event_each_get_their_own(
    replicas, services: Services
) -> None:
    a, _ = replicas
    board = token(Role.DASHBOARD, "board")
    async with ws_client(a.url, board) as first, ws_client(a.url, board) as second:
        await first.subscribe("subscription { pointsActivity { kind points } }")
        await second.subscribe("subscription Board { pointsActivity { id sourceType } }")
        await _wait_subscribers(a, 2)
        doc = ledger_document("m1", 1, points=7)
        await services.db.ledger.insert_one(doc)
        assert (await first.next_data()) == {"pointsActivity": {"kind": "GRANT", "points": 7}}
        assert (await second.next_data()) == {"pointsActivity": {"id": str(doc["_id"]), "sourceType": "TEST"}}


async def test_stock_events_of_an_unlisted_gift_reach_only_admins(settings: Settings, services: Services) -> None:
    """giftStockChanged follows the catalog's visibility rule: an unlisted gift's name never streams
    to a caller that gift(id) would answer GIFT_NOT_FOUND (issue 11, item 11)."""
    from gateway.domain.program import DEFAULT_PROGRAM
    from gateway.features.catalog import GiftSpec

    catalog = services.catalog
    spec = GiftSpec(name="Secret launch", category="misc", cost_price=1_000, points=10, listed=False)
    gift_id = (await catalog.create(spec, stock=1, program=DEFAULT_PROGRAM))["_id"]
    stock = "subscription($g: String!) { giftStockChanged(giftId: $g) { giftId name stock } }"
    async with (
        gateway(settings, services) as gw,
        ws_client(gw.url) as anonymous,
        ws_client(gw.url, token(Role.MEMBER, "m1")) as member,
        ws_client(gw.url, token(Role.ADMIN, "admin")) as admin,
    ):
        for client in (anonymous, member, admin):
            await client.subscribe(stock, {"g": gift_id})
        await _wait_subscribers(gw, 3)
        await catalog.restock(gift_id, 4)  # unlisted: admins only
        assert (await admin.next_data())["giftStockChanged"] == {"giftId": gift_id, "name": "Secret launch", "stock": 5}
        await catalog.set_listed(gift_id, True)  # not a stock change, no event
        await catalog.restock(gift_id, 1)
        for client in (anonymous, member, admin):
            # The first event the storefront callers see is the one after listing.
            assert (await client.next_data())["giftStockChanged"]["stock"] == 6
