"""Rate limits per principal and persisted (allow-listed) operations: the use cases behind the web guard."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import PyMongoError

from gateway.core.clock import Clock
from gateway.core.hardening import RateLimits
from gateway.store.guard import count_hit, find_persisted, save_persisted
from gateway.store.mongo import Database

log = logging.getLogger("gateway.rate_limits")

RATE_LIMITED = "RATE_LIMITED"
KNOWN_FOR = 1.0  # seconds a key's count from MongoDB may admit hits without waiting for theirs
EARLY_BATCH_SECONDS = 0.01  # how long hits nobody waits for gather before their upsert


@dataclass(frozen=True)
class Refusal:
    """Too many requests: answer 429 with ``Retry-After: retry_after``."""

    retry_after: int
    limit: int
    scope: str

    @property
    def message(self) -> str:
        return f"Too many requests ({self.scope}: {self.limit} per window); retry after {self.retry_after} s"


class RateLimiter:
    """Fixed windows counted in MongoDB, so every replica sees the same count.

    One atomic upsert per request, except that hits of one key arriving while that key's upsert
    is in flight wait for it and then go together in the next one, adding their number at once
    (group commit): each hit still gets its exact place in the window's count, as if they had
    gone one by one, and a key under a burst (one partner, many users behind one address) costs
    one round trip per flight instead of one per request.

    A hit is admitted without waiting for its count while this replica knows the key's window to
    be under half its limit: the count MongoDB returned for it less than ``KNOWN_FOR`` seconds
    ago (every replica's hits included) plus this replica's hits not counted yet, this one
    included. It is counted all the same, in the key's next upsert; only its answer does not wait
    for it. Closer to the limit, or without a recent count, hits wait for their exact place as
    above. So every request is counted, and the limit holds unless other replicas add more than
    half of it to one key within a second. An upsert that only hits admitted early are in (nobody
    waits for it) first gathers the key's hits for ``EARLY_BATCH_SECONDS``, or until a hit that
    waits joins: a busy key costs one upsert per 10 ms instead of one per request or flight.

    Failed credentials count per client
    address against a much smaller budget; once an address is over it, this replica refuses its credentialed
    requests before checking them (so a credential-stuffing client learns nothing) until the
    window ends. Other replicas learn it at that address's next failure there.
    """

    def __init__(self, db: Database, clock: Clock, limits: RateLimits) -> None:
        self.db = db
        self.clock = clock
        self.limits = limits
        self._blocked: dict[str, datetime] = {}
        self._waiting: dict[tuple[str, datetime], _Group] = {}  # hits not sent yet, by key and window
        self._sending: set[tuple[str, datetime]] = set()  # keys with an upsert in flight
        self._flying: dict[tuple[str, datetime], _Group] = {}  # the hits of that upsert
        self._napping: dict[tuple[str, datetime], asyncio.Future[None]] = {}  # senders gathering early hits
        self._senders: set[asyncio.Task[None]] = set()
        # the last count MongoDB returned and when (monotonic), by key and window
        self._known: dict[tuple[str, datetime], tuple[int, float]] = {}
        self._known_window: datetime | None = None

    def _window(self) -> tuple[datetime, datetime, datetime]:
        now = self.clock.now()
        size = self.limits.window_seconds
        start = datetime.fromtimestamp((int(now.timestamp()) // size) * size, tz=now.tzinfo)
        return now, start, start + timedelta(seconds=size)

    def _refusal(self, now: datetime, end: datetime, limit: int, scope: str) -> Refusal:
        return Refusal(max(1, math.ceil((end - now).total_seconds())), limit, scope)

    async def hit(self, kind: str, subject: str) -> Refusal | None:
        """Count one request of ``subject`` (a member id, partner id, address...) of caller ``kind``."""
        limit = self.limits.for_kind(kind)
        now, start, end = self._window()
        slot = (f"{kind}:{subject}", start)
        if self._far_below(slot, limit):
            self._join(slot, end)  # counted in the key's next upsert; the answer does not wait for it
            return None
        count = await self._grouped_count(slot, end)
        return self._refusal(now, end, limit, kind) if count > limit else None

    def _far_below(self, slot: tuple[str, datetime], limit: int) -> bool:
        """Whether this hit keeps the window under half the limit, as far as this replica knows."""
        if slot[1] != self._known_window or len(self._known) > 100_000:  # a new window: forget the old
            self._known.clear()
            self._known_window = slot[1]
        known = self._known.get(slot)
        if known is None or time.monotonic() - known[1] > KNOWN_FOR:
            return False
        waiting, flying = self._waiting.get(slot), self._flying.get(slot)
        uncounted = (waiting.hits if waiting else 0) + (flying.hits if flying else 0)
        return 2 * (known[0] + uncounted + 1) <= limit

    def flushed(self) -> Awaitable[Any]:
        """Until every hit so far has been sent to MongoDB (hits admitted early included)."""
        return asyncio.gather(*self._senders)

    def _join(self, slot: tuple[str, datetime], end: datetime) -> _Group:
        """Add one hit to the key's next upsert (started now if none is in flight)."""
        group = self._waiting.get(slot)
        if group is None:
            group = self._waiting[slot] = _Group(asyncio.get_running_loop().create_future())
        if slot not in self._sending:
            self._sending.add(slot)
            sender = asyncio.create_task(self._send(slot, end))
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        group.hits += 1
        return group

    async def _grouped_count(self, slot: tuple[str, datetime], end: datetime) -> int:
        """This hit's place in the window's count, its upsert shared with the hits of the same flight."""
        group = self._join(slot, end)
        group.waiters += 1
        nap = self._napping.get(slot)
        if nap is not None and not nap.done():
            nap.set_result(None)  # this hit waits for its count: send now
        place = group.hits
        total = await asyncio.shield(group.done)  # one caller going away must not cancel the others' count
        return 0 if total == 0 else total - group.hits + place

    async def _send(self, slot: tuple[str, datetime], end: datetime) -> None:
        """Send the waiting hits of ``slot``, one upsert at a time, until none are waiting."""
        key, start = slot
        group = None
        try:
            while (group := self._waiting.get(slot)) is not None:
                if not group.waiters:
                    await self._gather(slot)  # only hits admitted early: nobody waits for this count
                del self._waiting[slot]
                self._flying[slot] = group
                try:
                    total = await self._count(key, start, end, group.hits)
                except Exception as exc:
                    group.done.set_exception(exc)
                else:
                    if total and start == self._known_window:
                        self._known[slot] = (total, time.monotonic())
                    group.done.set_result(total)
                finally:
                    del self._flying[slot]
        finally:
            self._sending.discard(slot)
            # Cancelled mid-flight (the process stopping): nobody is left waiting for ever.
            for left in (group, self._waiting.pop(slot, None)):
                if left is not None and not left.done.done():
                    left.done.cancel()

    async def _gather(self, slot: tuple[str, datetime]) -> None:
        """Let more hits of ``slot`` join for ``EARLY_BATCH_SECONDS``, or until one that waits does."""
        loop = asyncio.get_running_loop()
        wake = self._napping[slot] = loop.create_future()
        timer = loop.call_later(EARLY_BATCH_SECONDS, _settle, wake)
        try:
            await wake
        finally:
            timer.cancel()
            del self._napping[slot]

    async def _count(self, key: str, start: datetime, end: datetime, hits: int = 1) -> int:
        """The window's count after these hits; 0 when MongoDB cannot count (fail open, logged)."""
        try:
            return await count_hit(self.db, key, start, end + timedelta(seconds=5), hits)
        except PyMongoError as exc:
            log.warning("rate limit not counted (%s): %s", key.split(":")[0], type(exc).__name__)
            return 0

    def blocked(self, address: str) -> Refusal | None:
        """An address over its failed-credentials budget, as far as this replica knows."""
        until = self._blocked.get(address)
        if until is None:
            return None
        now = self.clock.now()
        if now >= until:
            del self._blocked[address]
            return None
        return self._refusal(now, until, self.limits.failed_auth, "failed_auth")

    async def failed(self, address: str) -> Refusal | None:
        """Count bad credentials from ``address``; a refusal once over the budget."""
        now, start, end = self._window()
        count = await self._count(f"failed_auth:{address}", start, end)
        if count < self.limits.failed_auth:
            return None
        if len(self._blocked) > 100_000:  # bounded memory under a spray of addresses
            self._blocked.clear()
        self._blocked[address] = end
        return (
            self._refusal(now, end, self.limits.failed_auth, "failed_auth") if count > self.limits.failed_auth else None
        )


class _Group:
    """Hits of one key and window that go to MongoDB in one upsert."""

    __slots__ = ("done", "hits", "waiters")

    def __init__(self, done: asyncio.Future[int]) -> None:
        self.done = done
        self.hits = 0
        self.waiters = 0  # hits waiting for the count (the others were admitted early)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def sha256_hex(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


class PersistedQueries:
    """Operations by their SHA-256, shared through MongoDB; ``allowListed`` ones were registered by an operator."""

    CACHE_SIZE = 5000

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._cache: OrderedDict[str, tuple[str, bool]] = OrderedDict()

    async def find(self, sha256: str) -> tuple[str, bool] | None:
        """(query text, allow-listed) by hash; texts never change for a hash, so found ones are cached."""
        cached = self._cache.get(sha256)
        if cached is not None and cached[1]:
            self._cache.move_to_end(sha256)
            return cached
        doc = await find_persisted(self.db, sha256)
        if doc is None:
            return None
        found = (str(doc["query"]), bool(doc.get("allowListed")))
        self._cache[sha256] = found
        if len(self._cache) > self.CACHE_SIZE:
            self._cache.popitem(last=False)
        return found

    async def register(self, query: str, *, allow_listed: bool, name: str | None = None, source: str) -> str:
        sha256 = sha256_hex(query)
        await save_persisted(
            self.db, sha256, query, allow_listed=allow_listed, name=name, now=self.clock.now(), source=source
        )
        self._cache.pop(sha256, None)
        return sha256
