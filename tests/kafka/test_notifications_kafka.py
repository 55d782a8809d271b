"""Notifications reach the ``loyalty.notifications`` Kafka topic through the worker's publisher."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from gateway.core.clock import FrozenClock
from gateway.core.settings import Settings
from gateway.services import Services
from gateway.workers.notifications import KafkaPublisher
from tests.support.ledger_helpers import add_member, earn


async def test_a_due_reminder_is_published_keyed_by_member(
    settings: Settings, services: Services, clock: FrozenClock, kafka_bootstrap: str
) -> None:
    topic = f"notifications-{uuid.uuid4().hex[:8]}"
    kafka = settings.model_copy(
        update={
            "kafka_bootstrap_servers": kafka_bootstrap,
            "kafka_idempotent_producer": False,  # tansu refuses idempotent producers
            "kafka_notification_topic": topic,
        }
    )
    services = Services(settings=kafka, db=services.db, clock=clock, jwt_secret=services.jwt_secret)
    await add_member(services, "kim")
    await earn(services.ledger, "kim", 42)
    clock.advance(timedelta(days=365 - 3))

    publisher = KafkaPublisher(services)
    try:
        await services.notifications.scan()
        async with httpx.AsyncClient() as http:
            sent = await services.notifications.dispatch(http, publisher, owner="test")
    finally:
        await publisher.close()
    assert sent.delivered == 1

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            message = await consumer.getone()
    finally:
        await consumer.stop()
    event = orjson.loads(message.value)
    assert message.key == b"kim"
    assert event["reason"] == "POINTS_EXPIRING" and event["member"]["id"] == "kim"
    assert event["data"]["points"] == 42 and event["data"]["daysBefore"] == 7
