"""The in-server scheduled jobs: points expiry (every ``scheduler_interval_seconds``) and tier
re-evaluation over the validity window (every ``tier_reevaluation_interval_seconds``, daily by
default). Every replica runs these loops; a lease in MongoDB lets one of them run each job at
a time (``gateway.workers.scheduled``)."""

from __future__ import annotations

import logging

from gateway.features.expiry import ExpiryReport, expire_points
from gateway.features.tiering import ReevaluationReport, reevaluate_all
from gateway.services import Services
from gateway.workers.scheduled import run_scheduled

log = logging.getLogger(__name__)


async def expiry_worker(services: Services) -> None:
    settings = services.settings

    async def job() -> ExpiryReport:
        report = await expire_points(
            services.db, services.ledger, batch_size=settings.job_batch_size, concurrency=settings.job_concurrency
        )
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
