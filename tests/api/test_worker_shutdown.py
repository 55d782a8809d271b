"""A serving gateway's workers stop on shutdown even when one of them swallows a cancellation.

On Python 3.11 ``asyncio.wait_for`` loses a cancellation that arrives as its wait completes, and
PyMongo's pool waits for a connection that way: a worker cancelled at that instant carries on. The
supervisor cancels again until every worker has ended (gateway/core/tasks.py).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from gateway.core.tasks import cancel_and_wait, finish_before_cancelling
from gateway.services import Services
from gateway.workers import supervisor

GUARD = 30.0  # only stops a hung run; the stops below take a second at most


async def test_a_task_whose_cancellation_was_swallowed_is_cancelled_again() -> None:
    seen: list[str] = []

    async def stubborn() -> None:
        for _ in range(2):  # swallows the first cancellation, as the race above does
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                seen.append("cancelled")
        seen.append("ran on")

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task], every=0.1), GUARD)
    assert task.done() and seen == ["cancelled", "cancelled", "ran on"]


async def test_python_3_11_wait_for_really_swallows_a_cancellation_at_completion() -> None:
    """The race the supervisor guards against, with the standard library only (none on 3.12+)."""
    condition = asyncio.Condition()
    carried_on = asyncio.Event()

    async def waiter() -> None:
        async with condition:
            await asyncio.wait_for(condition.wait(), 60)
        carried_on.set()
        await asyncio.sleep(60)

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0.01)
    async with condition:
        condition.notify_all()
        task.cancel()
    await asyncio.sleep(0.01)
    if sys.version_info < (3, 12):
        assert carried_on.is_set() and not task.done(), "the cancellation was swallowed"
    await asyncio.wait_for(cancel_and_wait([task], every=0.1), GUARD)
    assert task.done()


async def test_running_workers_stop_although_a_worker_swallows_its_cancellation(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    cancellations: list[str] = []

    async def stubborn_worker(_: Any) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:  # lost, as in the race above
            cancellations.append("swallowed")
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancellations.append("stopped")
            raise

    monkeypatch.setattr(supervisor, "workers_for", lambda _: [("stubborn", stubborn_worker)])

    async def serve_then_stop() -> None:
        async with supervisor.running_workers(services) as tasks:
            await asyncio.sleep(0.05)
            assert not tasks[0].done()

    await asyncio.wait_for(serve_then_stop(), GUARD)
    assert cancellations == ["swallowed", "stopped"]


async def test_a_step_that_must_not_stop_half_way_finishes_before_its_caller_is_cancelled() -> None:
    finished: list[str] = []

    async def record_what_was_sent() -> str:
        await asyncio.sleep(0.2)
        finished.append("recorded")
        return "done"

    caller = asyncio.create_task(finish_before_cancelling(record_what_was_sent()))
    await asyncio.sleep(0.05)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(caller, GUARD)
    assert finished == ["recorded"]
    assert await finish_before_cancelling(record_what_was_sent()) == "done"  # uncancelled: its result
