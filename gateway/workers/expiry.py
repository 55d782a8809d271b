"""The in-server expiry scheduler: runs the expiry job every ``settings.scheduler_interval_seconds``."""

from __future__ import annotations

import asyncio
import logging

from gateway.features.expiry import expire_points
from gateway.services import Services

log = logging.getLogger(__name__)


async def expiry_worker(services: Services) -> None:
    """Runs inside the server every ``settings.scheduler_interval_seconds``."""
    interval = services.settings.scheduler_interval_seconds
    while True:
        report = await expire_points(services.db, services.ledger)
        if report.members:
            log.info("expiry job: %s", report)
        await asyncio.sleep(interval)
