"""The in-server expiry scheduler: runs the expiry job every ``settings.scheduler_interval_seconds``."""

from __future__ import annotations

import asyncio
import logging
import time

from gateway.core.metrics import EXPIRED_POINTS, EXPIRY_DURATION, EXPIRY_LAST_SUCCESS, EXPIRY_RUNS
from gateway.features.expiry import ExpiryReport, expire_points
from gateway.services import Services

log = logging.getLogger(__name__)


async def run_expiry_once(services: Services) -> ExpiryReport:
    """One run of the job, counted in the expiry metrics (runs by outcome, duration, last success)."""
    started = time.perf_counter()
    try:
        report = await expire_points(services.db, services.ledger)
    except Exception:
        EXPIRY_RUNS.labels("failed").inc()
        raise
    finally:
        EXPIRY_DURATION.observe(time.perf_counter() - started)
    EXPIRY_RUNS.labels("partial" if report.errors else "ok").inc()
    EXPIRED_POINTS.inc(report.expired_points)
    if not report.errors:
        EXPIRY_LAST_SUCCESS.set_to_current_time()
    return report


async def expiry_worker(services: Services) -> None:
    """Runs inside the server every ``settings.scheduler_interval_seconds``."""
    interval = services.settings.scheduler_interval_seconds
    while True:
        report = await run_expiry_once(services)
        if report.members:
            log.info("expiry job: %s", report)
        await asyncio.sleep(interval)
