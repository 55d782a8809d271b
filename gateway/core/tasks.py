"""Stopping asyncio tasks for sure, and steps that must not stop half-way.

On Python 3.11 ``asyncio.wait_for`` swallows a cancellation that arrives just as what it waits for
completes (CPython gh-86296, fixed in 3.12), and PyMongo's async pool waits for a connection that
way (``pymongo.lock._async_cond_wait``). A task cancelled at that instant carries on as if nothing
happened, and whoever awaits it after one ``cancel()`` waits forever: a shutdown that hangs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

RECANCEL_EVERY = 1.0  # seconds between cancellations of a task that is still running


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], *, every: float = RECANCEL_EVERY) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again each ``every`` seconds
    those still running. Their errors are retrieved, not raised: each task reports its own."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=every)
    await asyncio.gather(*tasks, return_exceptions=True)


async def finish_before_cancelling(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even if the caller is cancelled meanwhile; the cancellation then
    takes effect once it is done. For a step that must not stop half-way (recording what was sent)."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                break  # the work itself was cancelled: its result says so
            cancelled = True  # the caller was: finish the work, then stop
    if cancelled:
        if not task.cancelled():
            task.exception()  # retrieved; the cancellation is what the caller hears
        raise asyncio.CancelledError
    return task.result()
