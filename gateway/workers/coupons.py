"""Codes past their expiry leave their pools, and the virtual gifts' stock with them.

Runs every ``coupon_expiry_interval_seconds`` under a lease (one replica at a time); each pool
is its own transaction, so a stop anywhere loses nothing. Between two runs a redemption never
hands out an expired code (it only takes codes still good); if it finds none it expires the
pool's due codes itself and answers OUT_OF_STOCK.
"""

from __future__ import annotations

import logging

from gateway.services import Services
from gateway.workers.scheduled import run_scheduled

log = logging.getLogger(__name__)


async def coupon_expiry_worker(services: Services) -> None:
    async def job() -> int:
        count = await services.coupons.expire_due()
        if count:
            log.info("coupon expiry: %d codes left their pools", count)
        return count

    await run_scheduled(services, "coupon-expiry", services.settings.coupon_expiry_interval_seconds, job)
