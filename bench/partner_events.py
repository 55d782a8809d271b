"""Partner events applied per second from Kafka, against a bare aiokafka consumer reading the same topic.

Run: ``.venv/bin/python -m bench.partner_events [--events 5000] [--members 200]``
(``--trips``: also count MongoDB commands per applied event, by command; ``--spy FILE``: py-spy the
consumer's run, raw format, and print where its CPU went; ``pip install py-spy``; ``--max-records N``:
the consumer's batch instead of its default). Starts its own
mongod (EmbeddedMongo) and tansu broker in a temporary directory, publishes signed partner
events (mostly accruals, some burns and conversions, keyed by member), then in one run:

1. a bare ``AIOKafkaConsumer`` reads every message (no parsing, no writes): the ceiling;
2. ``PartnerEventConsumer`` verifies, applies (a member's consecutive events in one MongoDB
   transaction, each idempotent on its own) and commits;
3. bare one-insert MongoDB transactions at the same concurrency (the storage floor), half of
   them before the gateway's run and half after, so load that drifts during the run weighs on
   both sides alike; the floor is their mean.

The bare read is timed from its first fetch to the last record; the gateway from the first
batch it processes to the last event applied (group joins are not counted). The ratio is what
the gateway keeps of the broker's read rate.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo.monitoring import CommandListener, CommandStartedEvent

from bench import spy as bench_spy
from gateway.core.auth import Principal, Role
from gateway.core.clock import SystemClock
from gateway.core.settings import Settings
from gateway.domain.exchange import Rate
from gateway.domain.partner_signing import signed_event
from gateway.domain.partner_terms import PartnerTerms
from gateway.domain.program import DEFAULT_PROGRAM
from gateway.events.kafka import new_producer
from gateway.features.members import Registration, new_member_document
from gateway.runtime import prepare
from gateway.services import Services
from gateway.store.embedded_mongod import EmbeddedMongo
from gateway.store.mongo import Database, create_client
from gateway.workers.partner_consumer import PartnerEventConsumer
from tests.support.services import TansuBroker

FAST_JOIN = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300}

BENCH_ADMIN = Principal(Role.ADMIN, "bench")


async def publish(settings: Settings, secret: str, events: int, members: int) -> None:
    rng = random.Random(1)
    balance = [0] * members
    producer = new_producer(settings, linger_ms=5)
    await producer.start()
    try:
        for n in range(events):
            i = rng.randrange(members)
            roll = rng.random()
            fields: dict[str, object] = {"partnerId": "bench", "eventId": f"e{n}", "memberRef": f"R{i}"}
            if roll < 0.15 and balance[i] >= 5:
                fields.update(type="BURN", points=5)
                balance[i] -= 5
            elif roll < 0.25:
                fields.update(type="CONVERT", points=100, direction="PARTNER_TO_COALITION")
                balance[i] += 10
            else:
                fields.update(type="ACCRUE", points=rng.randint(1, 50))
                balance[i] += fields["points"]  # type: ignore[operator]
            value = signed_event(secret, occurredAt="2026-03-02T04:00:00Z", **fields)
            await producer.send(settings.kafka_partner_topic, value, key=f"m{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()


async def bare_read_rate(settings: Settings, events: int) -> float:
    """A bare consumer assigned every partition (no group join), timed from its first fetch to the last record."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        topic = settings.kafka_partner_topic
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        start = time.perf_counter()
        await consumer.seek_to_beginning()
        read = 0
        while read < events:
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            read += sum(len(records) for records in batch.values())
        return read / (time.perf_counter() - start)
    finally:
        await consumer.stop()


async def bare_transaction_rate(db: Database, events: int, concurrency: int, first: int = 0) -> float:
    """The storage floor: one MongoDB transaction with one insert per event, same concurrency."""
    limit = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with limit:

            async def work(session):  # type: ignore[no-untyped-def]
                await db["bench_floor"].insert_one({"_id": n}, session=session)

            await db.transaction(work)

    start = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(first, first + events)))
    return events / (time.perf_counter() - start)


class Commands(CommandListener):
    """Counts MongoDB commands by name (and collection) while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.counts: Counter[str] = Counter()

    def started(self, event: CommandStartedEvent) -> None:
        if self.on:
            target = event.command.get(event.command_name)
            self.counts[f"{event.command_name} {target}" if isinstance(target, str) else event.command_name] += 1

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


PROFILE_BUCKETS = {
    "PyMongo / BSON": ("pymongo/", "bson/"),
    "aiokafka": ("aiokafka/",),
    "asyncio event loop": ("asyncio/base_events.py:_run_once", "asyncio/events.py"),
    "pydantic (event parse)": ("pydantic",),
    "signature check": ("signature_matches",),
    "posting (gateway/ledger)": ("gateway/ledger/",),
    "partner operations": ("partner_operations.py",),
}


class TimedConsumer(PartnerEventConsumer):
    """Records when the first batch started and the last batch finished applying."""

    first: float | None = None
    last: float = 0.0

    async def process(self, records, producer):  # type: ignore[no-untyped-def]
        if self.first is None:
            self.first = time.perf_counter()
        await super().process(records, producer)
        self.last = time.perf_counter()


async def run(
    events: int, members: int, concurrency: int, trips: bool = False, spy: str = "", max_records: int | None = None
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mongo = EmbeddedMongo(Path(tmp) / "mongo")
        broker = TansuBroker(Path(tmp) / "tansu.log")
        uri = await mongo.start()
        bootstrap = broker.start()
        commands = Commands()
        client = create_client(uri, maxPoolSize=200, **({"event_listeners": [commands]} if trips else {}))
        try:
            settings = Settings(
                mongodb_uri=uri,
                jwt_secret="bench-secret-that-is-long-enough-for-hs256",  # type: ignore[arg-type]
                data_dir=Path(tmp),
                kafka_bootstrap_servers=bootstrap,
                kafka_idempotent_producer=False,
                kafka_partner_topic="bench-partner-events",
                kafka_dead_letter_topic="bench-partner-events-dlq",
            )
            db = Database(client, "bench")
            await prepare(db)
            services = Services(settings=settings, db=db, clock=SystemClock())
            partners = services.partners
            _, _, secret = await partners.create(
                PartnerTerms(name="Bench", currency_name="Beans", rate=Rate(10, 1)), partner_id="bench"
            )
            now = services.clock.now()
            for i in range(members):
                reg = Registration(display_name=f"m{i}", member_id=f"m{i}")
                await services.members.insert(new_member_document(reg, DEFAULT_PROGRAM, now))
                await services.partner_links.link(BENCH_ADMIN, f"m{i}", "bench", f"R{i}")
            await publish(settings, secret, events, members)

            bare = await bare_read_rate(settings, events)
            floor_before = await bare_transaction_rate(db, events // 2, concurrency)
            options = {"max_records": max_records} if max_records else {}
            consumer = TimedConsumer(services, group_id="bench-gateway", concurrency=concurrency, **options)
            consumer.consumer_options = FAST_JOIN
            spying = bench_spy.start(spy) if spy else None
            commands.on = True
            stats = await consumer.run(idle_exit=2.0)
            commands.on = False
            if spying is not None:
                bench_spy.stop(spying)
            assert stats.applied == events, stats
            applied = stats.applied / (consumer.last - (consumer.first or consumer.last))
            entries = await db.ledger.count_documents({"source.partnerId": "bench"})
            floor_after = await bare_transaction_rate(db, events - events // 2, concurrency, first=events // 2)
            floor = (floor_before + floor_after) / 2
            print(f"events: {events}, members: {members}, concurrency: {concurrency}")
            print(f"applied {stats.applied}, dead-lettered {stats.dead_lettered}, ledger entries {entries}")
            print(f"bare aiokafka read rate:   {bare:10.0f} events/s")
            print(f"gateway applied rate:      {applied:10.0f} events/s")
            print(f"ratio applied / bare read: {applied / bare:10.4f}")
            print(
                f"bare MongoDB 1-insert transactions: {floor:10.0f} /s (storage floor, same concurrency;"
                f" {floor_before:.0f} before the gateway, {floor_after:.0f} after)"
            )
            print(f"ratio applied / bare transactions:  {applied / floor:10.3f}")
            print(f"consumer batches: {stats.batches} ({stats.read / max(stats.batches, 1):.0f} events each)")
            if trips:
                total = sum(commands.counts.values())
                print(f"MongoDB commands per applied event: {total / max(stats.applied, 1):.2f}")
                for name, count in commands.counts.most_common():
                    print(f"  {count / max(stats.applied, 1):6.2f}  {name}")
            if spy:
                bench_spy.summarize(spy, PROFILE_BUCKETS, title="the consumer")
        finally:
            await client.close()
            broker.stop()
            mongo.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--trips", action="store_true", help="count MongoDB commands per applied event")
    parser.add_argument("--spy", default="", help="py-spy the consumer's run into this file (raw format)")
    parser.add_argument("--max-records", type=int, default=None, help="the consumer's batch (default: its own)")
    args = parser.parse_args()
    asyncio.run(run(args.events, args.members, args.concurrency, args.trips, args.spy, args.max_records))


if __name__ == "__main__":
    main()
