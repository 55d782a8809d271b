"""Kafka set-up shared by every producer and consumer of the gateway: one way to make a producer
and one way to make sure the topics exist."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from gateway.core.settings import Settings

log = logging.getLogger(__name__)


async def ensure_topics(settings: Settings, *topics: str, partitions: int = 3) -> None:
    """Create the topics when missing. A broker that auto-creates needs nothing, so a failure here
    is logged, not raised: the producer or consumer that follows reports a real outage itself."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, partitions, 1) for t in topics if t not in existing]
        if missing:
            await admin.create_topics(missing)
    except TopicAlreadyExistsError:
        pass  # another replica created it between our list and create
    except KafkaError as exc:
        log.warning("could not ensure topics %s: %r", topics, exc)
    finally:
        await admin.close()


def new_producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    """A producer that waits for all replicas and honours ``kafka_idempotent_producer``
    (tansu refuses idempotent producers). Start it with ``await producer.start()``."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_idempotence=settings.kafka_idempotent_producer,
        acks="all",
        **options,
    )
