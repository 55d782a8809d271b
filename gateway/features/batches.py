"""Bounded concurrent batches over a streamed cursor of ids (the scheduled jobs' shape)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable


async def for_each_in_batches(
    ids: AsyncIterator[str],
    work: Callable[[str], Awaitable[None]],
    *,
    batch_size: int,
    concurrency: int,
) -> int:
    """Run ``work`` for every id: ``batch_size`` ids read at a time, at most ``concurrency``
    in flight; the next batch is read only when the previous one is done, so memory stays
    bounded however long the cursor is. Returns the number of batches. ``work`` handles
    its own failures (an exception escaping it stops the run)."""
    if batch_size < 1 or concurrency < 1:
        raise ValueError("batch_size and concurrency must be at least 1")
    gate = asyncio.Semaphore(concurrency)

    async def guarded(item: str) -> None:
        async with gate:
            await work(item)

    batches = 0
    batch: list[str] = []
    async for item in ids:
        batch.append(item)
        if len(batch) == batch_size:
            await asyncio.gather(*(guarded(i) for i in batch))
            batches += 1
            batch = []
    if batch:
        await asyncio.gather(*(guarded(i) for i in batch))
        batches += 1
    return batches
