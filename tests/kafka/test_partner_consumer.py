"""Partner events over the real tansu broker into the real MongoDB: exactly once, dead letters, restarts."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from gateway.core.clock import FrozenClock
from gateway.core.settings import Settings
from gateway.domain.partner_commands import OperationType, PartnerCommand
from gateway.domain.partner_signing import signed_event
from gateway.events.kafka import new_producer
from gateway.features.audit import audit_all
from gateway.runtime import prepare
from gateway.services import Services
from gateway.store.mongo import Database
from gateway.web.app import create_app
from gateway.workers.partner_consumer import PartnerEventConsumer
from gateway.workers.supervisor import workers_for
from tests.conftest import JWT_SECRET
from tests.support.partner_helpers import PartnerCredentials, add_partner, linked_member

OCCURRED = "2026-03-02T04:00:00Z"


@pytest.fixture
async def kafka_services(
    settings: Settings, db: Database, clock: FrozenClock, kafka_bootstrap: str
) -> AsyncIterator[Services]:
    """Services on their own topics, so tests never read each other's events."""
    suffix = uuid.uuid4().hex[:8]
    configured = settings.model_copy(
        update={
            "kafka_bootstrap_servers": kafka_bootstrap,
            "kafka_idempotent_producer": False,
            "kafka_partner_topic": f"partner-events-{suffix}",
            "kafka_dead_letter_topic": f"partner-events-dlq-{suffix}",
        }
    )
    await prepare(db)
    services = Services(settings=configured, db=db, clock=clock, jwt_secret=JWT_SECRET)
    services.extras["test_group"] = f"group-{suffix}"
    yield services


def consumer(services: Services, **options: Any) -> PartnerEventConsumer:
    """A consumer in this test's own group (a shared group would rebalance across tests).

    tansu holds a group join for half the session timeout; a short one keeps tests quick.
    """
    return PartnerEventConsumer(
        services,
        group_id=services.extras["test_group"],
        consumer_options={"session_timeout_ms": 2000, "heartbeat_interval_ms": 300},
        **options,
    )


async def publish(services: Services, messages: list[tuple[bytes, bytes]]) -> None:
    producer = new_producer(services.settings)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(services.settings.kafka_partner_topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def dead_letters(services: Services, expected: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Every message on the dead-letter topic (waits until ``expected`` arrived or the timeout)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=services.settings.kafka_bootstrap_servers, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        topic = services.settings.kafka_dead_letter_topic
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        letters: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(letters) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            letters += [orjson.loads(r.value) for records in batch.values() for r in records]
        batch = await consumer.getmany(timeout_ms=500)  # anything beyond what was expected
        letters += [orjson.loads(r.value) for records in batch.values() for r in records]
        return letters
    finally:
        await consumer.stop()


def event(partner: PartnerCredentials, event_id: str, type_: str, member_ref: str, **fields: Any) -> bytes:
    return signed_event(
        partner.secret,
        partnerId=partner.id,
        eventId=event_id,
        type=type_,
        memberRef=member_ref,
        occurredAt=OCCURRED,
        **fields,
    )


async def setup_coalition(services: Services, members: int) -> tuple[list[PartnerCredentials], list[str]]:
    partners = [await add_partner(services, "coffee"), await add_partner(services, "tea")]
    refs = []
    for i in range(members):
        await linked_member(services, f"m{i}", ("coffee", f"C-{i}"), ("tea", f"T-{i}"))
        refs.append(f"{i}")
    return partners, refs


def valid_events(
    partners: list[PartnerCredentials], members: int, count: int, seed: int
) -> tuple[list[tuple[bytes, bytes]], dict[str, int]]:
    """Accruals, burns and conversions that all apply in order; returns them and each member's final balance."""
    rng = random.Random(seed)
    balance = dict.fromkeys(range(members), 0)
    messages = []
    for n in range(count):
        i = rng.randrange(members)
        partner = rng.choice(partners)
        prefix = "C" if partner.id == "coffee" else "T"
        ref = f"{prefix}-{i}"
        roll = rng.random()
        if roll < 0.2 and balance[i] >= 10:
            points = rng.randint(1, balance[i])
            value = event(partner, f"ev-{n}", "BURN", ref, points=points)
            balance[i] -= points
        elif roll < 0.3:
            value = event(partner, f"ev-{n}", "CONVERT", ref, points=105, direction="PARTNER_TO_COALITION")
            balance[i] += 10
        else:
            points = rng.randint(1, 100)
            value = event(partner, f"ev-{n}", "ACCRUE", ref, points=points)
            balance[i] += points
        messages.append((f"m{i}".encode(), value))
    return messages, {f"m{i}": points for i, points in balance.items()}


async def balances(db: Database) -> dict[str, int]:
    return {m["_id"]: m["balances"]["available"] async for m in db.members.find({})}


async def test_a_thousand_events_with_fifty_bad_ones(kafka_services: Services, db: Database) -> None:
    services = kafka_services
    partners, _ = await setup_coalition(services, 20)
    coffee, tea = partners
    messages, expected = valid_events(partners, 20, 950, seed=7)
    bad: list[tuple[bytes, bytes, str]] = []
    for n in range(10):
        bad.append((b"x", b"{not json" + str(n).encode(), "BAD_JSON"))
        forged = orjson.loads(event(coffee, f"forged-{n}", "ACCRUE", "C-1", points=10_000))
        forged["points"] = 99_999
        bad.append((b"m1", orjson.dumps(forged), "BAD_SIGNATURE"))
        stranger = PartnerCredentials("nobody", "k", "s")
        bad.append((b"x", event(stranger, f"u-{n}", "ACCRUE", "C-1", points=5), "PARTNER_NOT_FOUND"))
        bad.append((b"x", event(tea, f"unlinked-{n}", "ACCRUE", "C-1", points=5), "MEMBER_NOT_LINKED"))
        bad.append((b"m2", event(coffee, f"greedy-{n}", "BURN", "C-2", points=10**8), "INSUFFICIENT_POINTS"))
    rng = random.Random(3)
    mixed = list(messages)
    for key, value, _ in bad:
        mixed.insert(rng.randrange(len(mixed) + 1), (key, value))
    await publish(services, mixed)

    stats = await consumer(services).run(idle_exit=1.0)

    assert (stats.read, stats.applied, stats.replayed, stats.dead_lettered) == (1000, 950, 0, 50)
    assert await db["partner_operations"].count_documents({}) == 950
    assert await db.ledger.count_documents({"source.type": "PARTNER"}) == 950
    assert await balances(db) == expected
    letters = await dead_letters(services, 50)
    assert len(letters) == 50
    assert sorted(letter["reasonCode"] for letter in letters) == sorted(code for *_, code in bad)
    originals = {letter["original"] for letter in letters}
    assert originals == {value.decode() for _, value, _ in bad}
    assert all(letter["reason"] and "offset" in letter["source"] for letter in letters)
    assert await audit_all(db) == []


async def test_replays_over_kafka_and_graphql_share_one_key_space(kafka_services: Services, db: Database) -> None:
    services = kafka_services
    (coffee, _tea), _ = await setup_coalition(services, 2)
    applied, replayed = await services.partner_operations.apply(
        "coffee", PartnerCommand(OperationType.ACCRUE, "same-1", "C-0", points=40)
    )
    assert replayed is False
    same = event(coffee, "same-1", "ACCRUE", "C-0", points=40)
    other = event(coffee, "same-2", "ACCRUE", "C-0", points=5)
    conflict = event(coffee, "same-2", "ACCRUE", "C-0", points=6)
    reverse = event(coffee, "undo-2", "REVERSE", "C-0", originalEventId="same-2")
    await publish(services, [(b"m0", v) for v in (same, other, same, other, conflict, reverse, reverse)])
    stats = await consumer(services).run(idle_exit=1.0)
    assert (stats.applied, stats.replayed, stats.dead_lettered) == (2, 4, 1)
    assert (await balances(db))["m0"] == 40
    assert await db.ledger.count_documents({"memberId": "m0"}) == 3
    reported = await db["partner_operations"].find_one({"_id": "coffee:same-2"})
    assert reported["occurredAt"] == datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
    assert reported["reversedBy"] == "undo-2"
    [letter] = await dead_letters(services, 1)
    assert letter["reasonCode"] == "IDEMPOTENCY_CONFLICT"
    assert await audit_all(db) == []


async def test_a_consumer_cancelled_while_recording_its_dead_letters_records_them_first(
    kafka_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Letters sent but not yet recorded when the consumer is cancelled are recorded before it
    stops, so the re-read does not send them again (it did: a duplicate on the topic)."""
    services = kafka_services
    bad = [(b"x", b"garbage-" + str(n).encode()) for n in range(3)]
    await publish(services, bad)
    recording = asyncio.Event()
    remember = PartnerEventConsumer._remember_dead_letters

    async def slow_remember(self: PartnerEventConsumer, letters: list[dict[str, Any]]) -> None:
        recording.set()  # the letters are acked; the test cancels the consumer now
        await asyncio.sleep(0.3)
        await remember(self, letters)

    monkeypatch.setattr(PartnerEventConsumer, "_remember_dead_letters", slow_remember)
    first = consumer(services)
    task = asyncio.create_task(first.run())
    await asyncio.wait_for(recording.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    monkeypatch.setattr(PartnerEventConsumer, "_remember_dead_letters", remember)

    second = consumer(services)
    await second.run(idle_exit=1.0)
    assert second.stats.dead_lettered == 0, "the re-read sent the letters again"
    letters = await dead_letters(services, 3)
    assert sorted(letter["original"] for letter in letters) == sorted(v.decode() for _, v in bad)


async def test_cancelling_and_restarting_the_consumer_loses_and_duplicates_nothing(
    kafka_services: Services, db: Database
) -> None:
    services = kafka_services
    partners, _ = await setup_coalition(services, 20)
    messages, expected = valid_events(partners, 20, 500, seed=11)
    bad = [(b"x", b"garbage-" + str(n).encode()) for n in range(5)]
    await publish(services, messages[:250] + bad + messages[250:])

    first = consumer(services, max_records=40)
    task = asyncio.create_task(first.run())
    ops = db["partner_operations"]
    while await ops.count_documents({}) < 200:
        await asyncio.sleep(0.02)
        assert not task.done(), task
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    halfway = await ops.count_documents({})
    assert 200 <= halfway < 500

    second = consumer(services, max_records=40)
    stats = await second.run(idle_exit=1.0)

    assert await ops.count_documents({}) == 500
    assert await db.ledger.count_documents({"source.type": "PARTNER"}) == 500
    assert await db.idempotency.count_documents({}) == 500
    assert await balances(db) == expected
    assert stats.read < 505  # resumed from the committed offsets, not from the start
    # Events committed in MongoDB just before the cancellation replay harmlessly on the second run.
    assert first.stats.applied + stats.applied <= 500 <= first.stats.applied + stats.applied + stats.replayed
    letters = await dead_letters(services, 5)
    assert sorted(letter["original"] for letter in letters) == sorted(v.decode() for _, v in bad)
    assert await audit_all(db) == []


async def test_the_gateway_runs_the_consumer_when_kafka_is_configured(kafka_services: Services, services) -> None:
    assert "partner-events" in [name for name, _ in workers_for(kafka_services)]
    assert "partner-events" not in [name for name, _ in workers_for(services)]
    (coffee, _tea), _ = await setup_coalition(kafka_services, 1)
    kafka_services.extras["partner_consumer"] = {
        "group_id": kafka_services.extras["test_group"],
        "consumer_options": {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300},
    }
    app = create_app(kafka_services.settings, services=kafka_services, run_workers=True)
    async with app.router.lifespan_context(app):
        await publish(kafka_services, [(b"m0", event(coffee, "served-1", "ACCRUE", "C-0", points=12))])
        ops = kafka_services.db["partner_operations"]
        for _ in range(300):
            if await ops.count_documents({"_id": "coffee:served-1"}):
                break
            await asyncio.sleep(0.05)
    assert (await balances(kafka_services.db))["m0"] == 12


async def test_cli_consumes_partner_events(kafka_services: Services, db: Database, mongo_uri: str) -> None:
    services = kafka_services
    (coffee, _tea), _ = await setup_coalition(services, 1)
    await publish(
        services,
        [
            (b"m0", event(coffee, "cli-1", "ACCRUE", "C-0", amount=2_550)),
            (b"m0", event(coffee, "cli-2", "BURN", "C-0", points=5)),
            (b"m0", b"not json"),
        ],
    )
    settings = services.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env.update(
        LOYALTY_MONGODB_URI=mongo_uri,
        LOYALTY_DATABASE=db.db.name,
        LOYALTY_JWT_SECRET=JWT_SECRET,
        LOYALTY_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers or "",
        LOYALTY_KAFKA_IDEMPOTENT_PRODUCER="false",
        LOYALTY_KAFKA_PARTNER_TOPIC=settings.kafka_partner_topic,
        LOYALTY_KAFKA_DEAD_LETTER_TOPIC=settings.kafka_dead_letter_topic,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "consume-partner-events", "--idle-exit", "1",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert "applied 2, replayed 0, dead-lettered 1" in stderr.decode()
    assert (await balances(db))["m0"] == 20
