"""Periodic jobs that one gateway replica runs at a time, under a MongoDB lease.

Every replica runs ``run_scheduled`` for each job; only the holder of the job's lease
(``job:<name>`` in ``leases``) runs it, at most once per interval as recorded on the lease
(so a restart or failover neither skips nor repeats a run early). While a run lasts the
holder keeps renewing; if it loses the lease mid-run it stops the run (the jobs are safe to
stop anywhere: each member is its own transaction). On a graceful stop the lease is released
and another replica takes over at once; if the holder dies, the lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from pymongo.errors import PyMongoError

from gateway.core.tasks import cancel_and_wait
from gateway.services import Services
from gateway.store.leases import Lease, new_owner
from gateway.store.mongo import is_unavailable

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]


def job_lease(services: Services, name: str, owner: str | None = None, ttl_seconds: float | None = None) -> Lease:
    ttl = ttl_seconds if ttl_seconds is not None else services.settings.job_lease_seconds
    return Lease(services.db, f"job:{name}", owner or new_owner(), ttl)


async def run_scheduled(
    services: Services,
    name: str,
    interval_seconds: float,
    job: Job,
    *,
    owner: str | None = None,
    ttl_seconds: float | None = None,
) -> None:
    """Until cancelled: take part in the lease for ``name`` and run ``job`` when it is due."""
    lease = job_lease(services, name, owner, ttl_seconds)
    ttl = lease.ttl_ms / 1000
    try:
        while True:
            if await lease.acquire() is not None and await lease.claim_run(interval_seconds):
                await _run_holding(lease, name, job, ttl)
            await asyncio.sleep(min(ttl / 3, interval_seconds))
    finally:
        with contextlib.suppress(PyMongoError, asyncio.CancelledError):
            await asyncio.shield(lease.release())


async def _run_holding(lease: Lease, name: str, job: Job, ttl: float) -> None:
    task = asyncio.ensure_future(job())
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=ttl / 3)
            if done:
                break
            if not await lease.renew():
                log.warning("job %s: lease lost mid-run; stopping this run", name)
                await cancel_and_wait([task])
                await lease.finish_run("stopped: lease lost", error="lease lost")
                return
        try:
            report = task.result()
        except Exception as exc:  # the next interval retries; a failing job must not stop the loop
            if is_unavailable(exc):  # MongoDB is down: expected, no traceback
                log.warning("job %s failed: MongoDB unavailable (%s)", name, type(exc).__name__)
            else:
                log.exception("job %s failed", name)
            await lease.finish_run("failed", error=f"{type(exc).__name__}: {exc}")
            return
        await lease.finish_run(str(report))
    finally:
        await cancel_and_wait([task])
