"""Rate limits per principal and persisted (allow-listed) operations: the use cases behind the web guard."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo.errors import PyMongoError

from gateway.core.clock import Clock
from gateway.core.hardening import RateLimits
from gateway.store.guard import count_hit, find_persisted, save_persisted
from gateway.store.mongo import Database

log = logging.getLogger("gateway.rate_limits")

RATE_LIMITED = "RATE_LIMITED"


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
    one round trip per flight instead of one per request. Failed credentials count per client
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
        self._senders: set[asyncio.Task[None]] = set()

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
        count = await self._grouped_count(f"{kind}:{subject}", start, end)
        return self._refusal(now, end, limit, kind) if count > limit else None

    async def _grouped_count(self, key: str, start: datetime, end: datetime) -> int:
        """This hit's place in the window's count, its upsert shared with the hits of the same flight."""
        slot = (key, start)
        group = self._waiting.get(slot)
        if group is None:
            group = self._waiting[slot] = _Group(asyncio.get_running_loop().create_future())
        if slot not in self._sending:
            self._sending.add(slot)
            sender = asyncio.create_task(self._send(slot, end))
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        group.hits += 1
        place = group.hits
        total = await asyncio.shield(group.done)  # one caller going away must not cancel the others' count
        return 0 if total == 0 else total - group.hits + place

    async def _send(self, slot: tuple[str, datetime], end: datetime) -> None:
        """Send the waiting hits of ``slot``, one upsert at a time, until none are waiting."""
        key, start = slot
        group = None
        try:
            while (group := self._waiting.pop(slot, None)) is not None:
                try:
                    total = await self._count(key, start, end, group.hits)
                except Exception as exc:
                    group.done.set_exception(exc)
                else:
                    group.done.set_result(total)
        finally:
            self._sending.discard(slot)
            # Cancelled mid-flight (the process stopping): nobody is left waiting for ever.
            for left in (group, self._waiting.pop(slot, None)):
                if left is not None and not left.done.done():
                    left.done.cancel()

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

    __slots__ = ("done", "hits")

    def __init__(self, done: asyncio.Future[int]) -> None:
        self.done = done
        self.hits = 0


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
