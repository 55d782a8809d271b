"""The in-server scheduled jobs: points expiry (every ``scheduler_interval_seconds``) and tier
re-evaluation over the validity window (every ``tier_reevaluation_interval_seconds``, daily by
default). Every replica runs these loops; a lease in MongoDB lets one of them run each job at
a time (``gateway.workers.scheduled``)."""

from __future__ import annotations

import logging
import time

from gateway.core.metrics import EXPIRED_POINTS, EXPIRY_DURATION, EXPIRY_LAST_SUCCESS, EXPIRY_RUNS
from gateway.features.expiry import ExpiryReport, expire_points
from gateway.features.tiering import ReevaluationReport, reevaluate_all
from gateway.services import Services
from gateway.workers.scheduled import run_scheduled

log = logging.getLogger(__name__)


async def run_expiry_once(services: Services) -> ExpiryReport:
    """One run of the job, counted in the expiry metrics (runs by outcome, duration, last success)."""
    started = time.perf_counter()
    try:
        report = await expire_points(
            services.db,
            services.ledger,
            batch_size=services.settings.job_batch_size,
            concurrency=services.settings.job_concurrency,
        )
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
    settings = services.settings

    async def job() -> ExpiryReport:
        report = await run_expiry_once(services)
        if report.members:
            log.info("expiry job: %s", report)
        return report

    await run_scheduled(services, "points-expiry", settings.scheduler_interval_seconds, job)


async def tier_reevaluation_worker(services: Services) -> None:
    settings = services.settings

    async def job() -> ReevaluationReport:
        report = await reevaluate_all(
            services.db, services.ledger, batch_size=settings.job_batch_size, concurrency=settings.job_concurrency
        )
        log.info("tier re-evaluation: %s", report)
        return report

    await run_scheduled(services, "tier-reevaluation", settings.tier_reevaluation_interval_seconds, job)
