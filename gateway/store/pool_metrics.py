"""The driver's connection-pool events, turned into the pool metrics in ``gateway.core.metrics``.

Registered on every client ``create_client`` makes. Gauges count per server address (a replica
set has a handful), so the label set stays small.
"""

from __future__ import annotations

from typing import Any

from pymongo import monitoring

from gateway.core.metrics import POOL_CHECKOUT, POOL_CHECKOUT_FAILED, POOL_CLEARED, POOL_IN_USE, POOL_OPEN


def _address(event: Any) -> str:
    host, port = event.address
    return f"{host}:{port}"


class PoolMetrics(monitoring.ConnectionPoolListener):
    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None:
        POOL_OPEN.labels(_address(event)).inc(0)
        POOL_IN_USE.labels(_address(event)).inc(0)

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None:
        pass

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        POOL_CLEARED.inc()

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None:
        pass

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        POOL_OPEN.labels(_address(event)).inc()

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        pass

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        POOL_OPEN.labels(_address(event)).dec()

    def connection_check_out_started(self, event: monitoring.ConnectionCheckOutStartedEvent) -> None:
        pass

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        POOL_CHECKOUT_FAILED.labels(str(event.reason)).inc()
        duration = getattr(event, "duration", None)
        if duration is not None:
            POOL_CHECKOUT.observe(duration)

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        POOL_IN_USE.labels(_address(event)).inc()
        duration = getattr(event, "duration", None)
        if duration is not None:
            POOL_CHECKOUT.observe(duration)

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        POOL_IN_USE.labels(_address(event)).dec()
