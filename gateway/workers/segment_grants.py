"""Segment grant jobs run inside the servers: every replica takes part in the
``job:segment-grants`` lease and the holder works on the jobs that have work, every
``segment_grant_poll_seconds``. A replica that dies or loses the lease mid-job stops; the next
holder resumes from the job's snapshot checkpoint and its PENDING targets, and no member is
granted twice (each grant and its target's PENDING → GRANTED commit together)."""

from __future__ import annotations

import logging

from gateway.features.segment_grants import RunReport
from gateway.services import Services
from gateway.workers.scheduled import run_scheduled

log = logging.getLogger(__name__)


async def segment_grant_worker(services: Services) -> None:
    async def job() -> RunReport:
        report = await services.segment_grants.run_pending()
        if report.jobs:
            log.info("segment grants: %s", report)
        return report

    await run_scheduled(services, "segment-grants", services.settings.segment_grant_poll_seconds, job)
