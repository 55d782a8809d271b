"""Background work that runs inside a serving gateway (schedulers, stream watchers, consumers).

Each worker is supervised: a crash (a Kafka broker gone, MongoDB unreachable) is logged,
counted in ``/metrics`` (``loyalty_worker_restarts_total``) and retried with backoff, and
the worker's state is shown in ``/readyz`` under ``workers``. A worker never takes the
gateway down, and no GraphQL request waits for one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.core.metrics import WORKER_RESTARTS, WORKER_UP
from gateway.core.tasks import cancel_and_wait
from gateway.services import Services

log = logging.getLogger(__name__)

Worker = Callable[[Services], Awaitable[None]]
STATES = "worker_states"


@dataclass
class WorkerState:
    """What one worker is doing, as ``/readyz`` shows it."""

    state: str = "starting"  # starting | running | restarting | stopped
    restarts: int = 0
    last_error: str | None = None
    since: float = field(default_factory=time.time)
    detail: dict[str, Any] = field(default_factory=dict)

    def set(self, state: str, error: str | None = None) -> None:
        self.state, self.since = state, time.time()
        if error is not None:
            self.last_error = error

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"state": self.state, "since": round(self.since, 3), "restarts": self.restarts}
        if self.last_error:
            body["lastError"] = self.last_error
        return {**body, **self.detail}


def worker_state(services: Services, name: str) -> WorkerState:
    """The state record of worker ``name`` (workers add their own ``detail``)."""
    states: dict[str, WorkerState] = services.extras.setdefault(STATES, {})
    return states.setdefault(name, WorkerState())


def worker_states(services: Services) -> dict[str, dict[str, Any]]:
    return {name: state.as_json() for name, state in services.extras.get(STATES, {}).items()}


def workers_for(services: Services) -> list[tuple[str, Worker]]:
    """Every worker this gateway runs, by name. Each runs until cancelled."""
    from gateway.events.streams import watch_changes
    from gateway.workers.coupons import coupon_expiry_worker
    from gateway.workers.expiry import expiry_worker, tier_reevaluation_worker
    from gateway.workers.holds import holds_worker
    from gateway.workers.member_segments import member_segments_worker
    from gateway.workers.notifications import notification_worker
    from gateway.workers.segment_grants import segment_grant_worker

    found: list[tuple[str, Worker]] = [
        ("points-expiry", expiry_worker),
        ("hold-sweeper", holds_worker),
        ("change-watcher", watch_changes),
        ("notifications", notification_worker),
        ("tier-reevaluation", tier_reevaluation_worker),
        ("member-segments", member_segments_worker),
        ("segment-grants", segment_grant_worker),
        ("coupon-expiry", coupon_expiry_worker),
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
        await cancel_and_wait(tasks)


def _is_outage(exc: BaseException) -> bool:
    """A dependency is down (expected; no traceback needed), as opposed to a bug."""
    from aiokafka.errors import KafkaError

    from gateway.store.mongo import is_unavailable

    return isinstance(exc, KafkaError | OSError) or is_unavailable(exc)


async def _supervise(
    name: str, worker: Worker, services: Services, *, pause: float = 1.0, max_pause: float = 30.0
) -> None:
    """Restart a crashed worker after a pause that doubles up to ``max_pause`` (reset once it ran a while)."""
    state = worker_state(services, name)
    failures = 0
    while True:
        started = time.monotonic()
        state.set("running")
        WORKER_UP.labels(name).set(1)
        try:
            await worker(services)
            state.set("stopped")
            WORKER_UP.labels(name).set(0)
            return
        except asyncio.CancelledError:
            state.set("stopped")
            WORKER_UP.labels(name).set(0)
            raise
        except Exception as exc:
            failures = 1 if time.monotonic() - started > max_pause else failures + 1
            delay = min(max_pause, pause * 2 ** (failures - 1))
            state.restarts += 1
            state.set("restarting", f"{type(exc).__name__}: {str(exc)[:200]}")
            WORKER_UP.labels(name).set(0)
            WORKER_RESTARTS.labels(name).inc()
            if _is_outage(exc):
                log.warning("worker %s failed (%s: %s); restarting in %.0fs", name, type(exc).__name__, exc, delay)
            else:
                log.exception("worker %s failed; restarting in %.0fs", name, delay)
            await asyncio.sleep(delay)
