"""The daily RFM segment snapshot of members (``gateway.features.member_segments``), one replica
at a time under the ``job:member-segments`` lease."""

from __future__ import annotations

import logging

from gateway.features.member_segments import Snapshot
from gateway.services import Services
from gateway.workers.scheduled import run_scheduled

log = logging.getLogger(__name__)


async def member_segments_worker(services: Services) -> None:
    async def job() -> Snapshot:
        snapshot = await services.member_segments.refresh()
        log.info("member segment snapshot: %d members scored, %s", snapshot.scored, snapshot.segments)
        return snapshot

    await run_scheduled(services, "member-segments", services.settings.member_segment_interval_seconds, job)
