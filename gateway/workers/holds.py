"""Holds past their deadline are settled by the feature that made them.

A checkout deduction that no purchase posted is voided (its points return); a
points + cash redemption not paid in time is cancelled (points and stock
return). Each hold is settled in its own transaction, conditionally on still
being HELD, so two gateways sweeping at once never settle one twice (the loser
finds it settled and moves on); a lease would only save the duplicate reads.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from gateway.features.deduction import CHECKOUT
from gateway.features.redemptions import REDEMPTION
from gateway.services import Services

log = logging.getLogger(__name__)
BATCH = 200


@dataclass
class SweepReport:
    voided: int = 0
    cancelled_redemptions: int = 0


async def sweep_expired_holds(services: Services, *, batch: int = BATCH) -> SweepReport:
    """Settle every hold due now, ``batch`` at a time."""
    report = SweepReport()
    now = services.clock.now()
    seen: set[object] = set()
    while True:
        due = [h for h in await services.ledger.due_holds(now, batch) if h["_id"] not in seen]
        if not due:
            return report
        for hold in due:
            seen.add(hold["_id"])
            if hold["purpose"] == CHECKOUT:
                report.voided += await services.deductions.void_expired(hold)
            elif hold["purpose"] == REDEMPTION:
                report.cancelled_redemptions += await services.redemptions.cancel_unpaid(hold)
            else:
                log.error("hold %s has an unknown purpose %r; left held", hold["_id"], hold["purpose"])


async def holds_worker(services: Services) -> None:
    """Runs inside the server every ``settings.hold_sweep_interval_seconds``."""
    while True:
        report = await sweep_expired_holds(services)
        if report.voided or report.cancelled_redemptions:
            log.info("hold sweep: %s", report)
        await asyncio.sleep(services.settings.hold_sweep_interval_seconds)
