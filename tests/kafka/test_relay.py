"""The Kafka relay against the real tansu broker: every ledger entry once or more, none missing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from gateway.core.settings import Settings
from gateway.services import Services
from gateway.workers.relay import BALANCE_RELAY, LEASES, BalanceRelay, Lease, balance_event
from tests.support.ledger_helpers import add_member, earn, spend


@pytest.fixture
def kafka_settings(settings: Settings, kafka_bootstrap: str) -> Settings:
    return settings.model_copy(
        update={
            "kafka_bootstrap_servers": kafka_bootstrap,
            "kafka_idempotent_producer": False,  # tansu rejects idempotent producers
            "kafka_balance_topic": f"balances-{uuid.uuid4().hex[:8]}",
            "relay_lease_seconds": 3.0,
        }
    )


class RunningRelay:
    def __init__(self, services: Services, settings: Settings) -> None:
        self.relay = BalanceRelay(services.db, settings)
        self.task = asyncio.create_task(self.relay.run())

    async def holding(self) -> None:
        waiter = asyncio.create_task(self.relay.holding.wait())
        done, _ = await asyncio.wait({waiter, self.task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if self.task in done:
            self.task.result()
        assert waiter in done, "relay did not take the lease"

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def relays(services: Services, kafka_settings: Settings) -> AsyncIterator[list[RunningRelay]]:
    started: list[RunningRelay] = []
    yield started
    for relay in started:
        await relay.stop()


async def consume(settings: Settings, count: int, timeout: float = 60) -> list[Any]:
    """Read the topic from the beginning until ``count`` distinct event ids were seen."""
    consumer = AIOKafkaConsumer(
        settings.kafka_balance_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    messages: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while len({orjson.loads(m.value)["eventId"] for m in messages}) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    messages.extend(records)
    finally:
        await consumer.stop()
    return messages


async def test_every_balance_change_reaches_kafka_across_a_relay_restart(
    services: Services, kafka_settings: Settings, relays: list[RunningRelay]
) -> None:
    await add_member(services, "m1")
    await add_member(services, "m2")
    first = RunningRelay(services, kafka_settings)
    relays.append(first)
    await first.holding()
    for i in range(250):
        await earn(services.ledger, "m1" if i % 2 else "m2", 10)
    await first.stop()  # midway: stores its position and releases the lease
    lease = await services.db[LEASES].find_one({"_id": BALANCE_RELAY})
    assert lease is not None and lease["resumeToken"]
    for i in range(250):
        if i % 5 == 0:
            await spend(services.ledger, "m1", 1)
        else:
            await earn(services.ledger, "m2", 1)
    second = RunningRelay(services, kafka_settings)
    relays.append(second)
    await second.holding()

    messages = await consume(kafka_settings, 500)
    events = [orjson.loads(m.value) for m in messages]
    ids = {e["eventId"] for e in events}
    ledger_ids = {str(e["_id"]) async for e in services.db.ledger.find({}, {"_id": 1})}
    assert len(ledger_ids) == 500
    assert ids == ledger_ids  # none missing (duplicates would be allowed: at-least-once)
    assert all(m.key.decode() == e["memberId"] for m, e in zip(messages, events, strict=True))
    by_member: dict[str, list[int]] = {}
    for e in events:
        by_member.setdefault(e["memberId"], []).append(e["position"])
    for positions in by_member.values():  # keyed by member: each member's events in order
        assert positions == sorted(positions)


async def test_the_event_json_is_the_documented_shape(services: Services) -> None:
    await add_member(services, "m1")
    result = await earn(services.ledger, "m1", 25, key="k-1")
    (entry,) = await services.ledger.entries([result["entryId"]])
    event = balance_event(entry)
    assert event == {
        "eventId": str(entry["_id"]),
        "type": "balance.changed",
        "version": 1,
        "memberId": "m1",
        "position": 1,
        "kind": "GRANT",
        "points": 25,
        "delta": {"available": 25, "pending": 0, "lifetimeEarned": 25, "spent": 0, "expired": 0, "held": 0},
        "balancesAfter": {"available": 25, "pending": 0, "lifetimeEarned": 25, "spent": 0, "expired": 0, "held": 0},
        "reason": "test",
        "source": {"type": "TEST", "id": "test", "partnerId": None},
        "idempotencyKey": "k-1",
        "createdAt": "2026-03-02T04:00:00Z",
    }


async def test_only_one_relay_holds_the_lease(services: Services) -> None:
    a = Lease(services.db, "test-lease", "a", ttl_seconds=30)
    b = Lease(services.db, "test-lease", "b", ttl_seconds=30)
    assert await a.acquire() is not None
    assert await b.acquire() is None
    assert await a.renew({"_data": "token-1"})
    assert not await b.renew()
    await a.release({"_data": "token-2"})
    taken = await b.acquire()
    assert taken is not None and taken["owner"] == "b"
    assert taken["resumeToken"] == {"_data": "token-2"}  # the next holder resumes where a stopped
    assert not await a.renew()
    expiring = Lease(services.db, "short", "c", ttl_seconds=0.05)
    assert await expiring.acquire() is not None
    while await Lease(services.db, "short", "d", ttl_seconds=30).acquire() is None:
        await asyncio.sleep(0.02)  # c did not renew: d takes over once the lease expires


async def test_a_second_relay_waits_while_the_first_publishes(
    services: Services, kafka_settings: Settings, relays: list[RunningRelay]
) -> None:
    first = RunningRelay(services, kafka_settings)
    relays.append(first)
    await first.holding()
    second = RunningRelay(services, kafka_settings)
    relays.append(second)
    await asyncio.sleep(0.3)
    assert not second.relay.holding.is_set()
    await first.stop()
    await second.holding()  # released on stop: the standby takes over


def test_the_relay_runs_as_a_worker_only_with_kafka_configured(services: Services, kafka_settings: Settings) -> None:
    from gateway.workers.supervisor import workers_for

    assert [name for name, _ in workers_for(services)] == [
        "points-expiry",
        "hold-sweeper",
        "change-watcher",
        "notifications",
        "tier-reevaluation",
        "member-segments",
        "segment-grants",
        "coupon-expiry",
    ]
    services.settings = kafka_settings
    assert [name for name, _ in workers_for(services)] == [
        "points-expiry",
        "hold-sweeper",
        "change-watcher",
        "notifications",
        "tier-reevaluation",
        "member-segments",
        "segment-grants",
        "coupon-expiry",
        "partner-events",
        "balance-relay",
    ]


async def test_backfill_republishes_the_ledger_since_a_time(services: Services, kafka_settings: Settings) -> None:
    """The recovery when the stored position has left the oplog: republish by entry time."""
    from datetime import UTC, datetime, timedelta

    from gateway.events.kafka import ensure_topics, new_producer

    await add_member(services, "m1")
    for _ in range(5):
        await earn(services.ledger, "m1", 3)
    await ensure_topics(kafka_settings, kafka_settings.kafka_balance_topic)
    producer = new_producer(kafka_settings, linger_ms=5)
    await producer.start()
    try:
        relay = BalanceRelay(services.db, kafka_settings)
        assert await relay.backfill(producer, datetime.now(UTC) + timedelta(minutes=1)) == 0
        assert await relay.backfill(producer, datetime.now(UTC) - timedelta(minutes=1)) == 5
    finally:
        await producer.stop()
    events = [orjson.loads(m.value) for m in await consume(kafka_settings, 5)]
    assert [e["position"] for e in events] == [1, 2, 3, 4, 5]
