"""Background work that runs inside a serving gateway (schedulers, stream watchers, consumers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from gateway.services import Services

log = logging.getLogger(__name__)

Worker = Callable[[Services], Awaitable[None]]


def workers_for(services: Services) -> list[tuple[str, Worker]]:
    """Every worker this gateway runs, by name. Each runs until cancelled."""
    from gateway.events.streams import watch_changes
    from gateway.workers.expiry import expiry_worker, tier_reevaluation_worker
    from gateway.workers.holds import holds_worker
    from gateway.workers.notifications import notification_worker

    found: list[tuple[str, Worker]] = [
        ("points-expiry", expiry_worker),
        ("hold-sweeper", holds_worker),
        ("change-watcher", watch_changes),
        ("notifications", notification_worker),
        ("tier-reevaluation", tier_reevaluation_worker),
    ]
    if services.settings.kafka_bootstrap_servers:
        from gateway.workers.partner_consumer import partner_events_worker
        from gateway.workers.relay import run_relay

        found.append(("partner-events", partner_events_worker))
        found.append(("balance-relay", run_relay))
    return found


@contextlib.asynccontextmanager
async def running_workers(services: Services) -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks = [
        asyncio.create_task(_supervise(name, worker, services), name=name) for name, worker in workers_for(services)
    ]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _supervise(name: str, worker: Worker, services: Services) -> None:
    """Restart a crashed worker after a pause; a worker must never take the gateway down."""
    while True:
        try:
            await worker(services)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker %s failed; restarting in 5s", name)
            await asyncio.sleep(5)
