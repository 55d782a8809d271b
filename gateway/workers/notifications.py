"""The in-server notification loop: record what is due, then deliver it, every
``settings.notification_interval_seconds``. Safe on every replica at once (see features/notifications)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from gateway.events.kafka import ensure_topics, new_producer
from gateway.services import Services
from gateway.workers.relay import new_owner

log = logging.getLogger(__name__)


class KafkaPublisher:
    """Starts its producer on first use and again after a failure, so a broker outage only delays
    the Kafka target (the delivery is retried) and never stops webhook deliveries."""

    def __init__(self, services: Services) -> None:
        self.settings = services.settings
        self.producer: Any = None

    async def __call__(self, topic: str, key: bytes, value: bytes) -> None:
        if self.producer is None:
            await ensure_topics(self.settings, topic)
            producer = new_producer(self.settings, linger_ms=5)
            await producer.start()
            self.producer = producer
        try:
            await self.producer.send_and_wait(topic, value, key=key)
        except Exception:
            await self.close()
            raise

    async def close(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None:
            await producer.stop()


async def notification_worker(services: Services) -> None:
    owner = new_owner()
    publisher = KafkaPublisher(services) if services.settings.kafka_bootstrap_servers else None
    async with httpx.AsyncClient() as http:
        try:
            while True:
                scanned = await services.notifications.scan()
                sent = await services.notifications.dispatch(http, publisher, owner=owner)
                if scanned.recorded or sent.delivered or sent.retried or sent.dead:
                    log.info("notifications: recorded %s, %s", scanned.recorded, sent)
                await asyncio.sleep(services.settings.notification_interval_seconds)
        finally:
            if publisher is not None:
                await publisher.close()
