"""Throttling a live stream: at most one batch per interval, nothing dropped.

A dashboard does not need every ledger entry to redraw its KPIs; it needs to know,
at most once a second, that something changed and by how much. The first change after
a quiet spell goes out at once; later ones are gathered until the interval has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

T = TypeVar("T")


async def batches(
    source: AsyncIterator[T], interval: float, monotonic: Callable[[], float] = time.monotonic
) -> AsyncIterator[list[T]]:
    """Items of ``source`` in batches, one batch at most every ``interval`` seconds."""
    iterator = source.__aiter__()
    batch: list[T] = []
    last = float("-inf")
    nxt: asyncio.Future[T] | None = None
    try:
        while True:
            if nxt is None:
                nxt = asyncio.ensure_future(iterator.__anext__())
            if not batch:
                try:
                    batch.append(await nxt)
                except StopAsyncIteration:
                    return
                nxt = None
                continue
            wait = last + interval - monotonic()
            if wait <= 0:
                yield batch
                batch, last = [], monotonic()
                continue
            done, _ = await asyncio.wait({nxt}, timeout=wait)
            if done:
                try:
                    batch.append(nxt.result())
                except StopAsyncIteration:
                    yield batch
                    return
                nxt = None
    finally:
        if nxt is not None and not nxt.done():
            nxt.cancel()
            with contextlib.suppress(BaseException):
                await nxt
        close = getattr(iterator, "aclose", None)
        if close is not None:
            with contextlib.suppress(BaseException):
                await close()
