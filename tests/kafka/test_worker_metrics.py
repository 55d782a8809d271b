# ruff: noqa: F811  (fixtures imported from the relay and consumer tests are used as arguments)
"""The Kafka workers' metrics, measured on real runs against tansu: relay lease, published events
and lag; partner events applied, dead-lettered by reason, and consumer lag back to zero."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import REGISTRY

from gateway.core.settings import Settings
from gateway.services import Services
from gateway.store.mongo import Database
from tests.kafka.test_partner_consumer import (
    consumer,
    event,
    kafka_services,  # noqa: F401  (fixture)
    publish,
    setup_coalition,
    valid_events,
)
from tests.kafka.test_relay import RunningRelay, consume, kafka_settings, relays  # noqa: F401  (fixtures)
from tests.support.ledger_helpers import add_member, earn
from tests.support.partner_helpers import PartnerCredentials


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_relay_reports_its_lease_published_events_and_lag(
    services: Services, kafka_settings: Settings, relays: list[Any]
) -> None:
    await add_member(services, "m1")
    published_before = sample("loyalty_relay_published_total")
    relay = RunningRelay(services, kafka_settings)
    relays.append(relay)
    await relay.holding()
    assert sample("loyalty_relay_lease_held") == 1
    for _ in range(20):
        await earn(services.ledger, "m1", 1)
    await consume(kafka_settings, 20)
    for _ in range(500):  # the counter moves right after Kafka acknowledged the batch
        if sample("loyalty_relay_published_total") >= published_before + 20:
            break
        await asyncio.sleep(0.02)
    assert sample("loyalty_relay_published_total") - published_before == 20
    assert sample("loyalty_relay_lag_seconds") >= 0
    await relay.stop()
    assert sample("loyalty_relay_lease_held") == 0


async def test_partner_consumer_counts_outcomes_dead_letters_by_reason_and_lag(
    kafka_services: Services, db: Database
) -> None:
    services = kafka_services
    partners, _ = await setup_coalition(services, 3)
    messages, _ = valid_events(partners, 3, 30, seed=11)
    stranger = PartnerCredentials("nobody", "k", "s")
    bad = [(b"x", b"{not json"), (b"x", event(stranger, "u-1", "ACCRUE", "C-1", points=5))]
    await publish(services, messages + bad)
    before = {
        "applied": sample("loyalty_partner_events_total", outcome="applied"),
        "dead": sample("loyalty_partner_events_total", outcome="dead_lettered"),
        "BAD_JSON": sample("loyalty_partner_dead_letters_total", reason="BAD_JSON"),
        "PARTNER_NOT_FOUND": sample("loyalty_partner_dead_letters_total", reason="PARTNER_NOT_FOUND"),
    }
    stats = await consumer(services).run(idle_exit=1.0)
    assert (stats.applied, stats.dead_lettered) == (30, 2)
    assert sample("loyalty_partner_events_total", outcome="applied") - before["applied"] == 30
    assert sample("loyalty_partner_events_total", outcome="dead_lettered") - before["dead"] == 2
    for reason in ("BAD_JSON", "PARTNER_NOT_FOUND"):
        assert sample("loyalty_partner_dead_letters_total", reason=reason) - before[reason] == 1
    assert sample("loyalty_partner_consumer_lag_messages") == 0, "everything on the topic was consumed"
