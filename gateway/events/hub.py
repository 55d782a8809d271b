"""The in-process fan-out hub: one change-stream watcher feeds every local subscriber.

Events come from what MongoDB committed (see ``gateway.events.streams.watch_changes``), so a
change made through any gateway replica reaches subscribers on every replica. Each
subscriber has its own bounded queue; publishing never waits for a subscriber. One
whose queue overflows is dropped at once (its queue is freed) and its connection is
closed with ``4008 subscriber too slow``, so a stalled client costs neither the
others' latency nor unbounded memory.

A subscriber may also take a change at once (``direct``, see resolvers/broadcast.py): while
its reader waits with nothing queued, ``publish`` hands the change to ``direct`` instead of
queueing it and waking the reader; ``direct`` returns False to have it queued after all. A
change that arrives while the reader is busy is always queued, so each subscriber's changes
keep their order and the queue bound stays the slow-subscriber policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from gateway.core.errors import DomainError
from gateway.store.mongo import Document

log = logging.getLogger(__name__)

Topic = tuple[Hashable, ...]
# Closes the subscriber's connection: (close code, reason). Returns the closing task, if any.
Closer = Callable[[int, str], "asyncio.Task[None] | None"]

TOO_SLOW = (4008, "subscriber too slow")
GOING_AWAY = (1001, "going away")
DEFAULT_QUEUE_SIZE = 256


class StreamUnavailable(DomainError):
    code = "STREAM_UNAVAILABLE"


class SubscriberDropped(Exception):
    """The hub dropped this subscriber (too slow, or the gateway is stopping)."""


@dataclass(slots=True)
class Change:
    """One committed change, as the watcher saw it; ``views`` caches per-type conversions."""

    collection: str
    operation: str
    doc: Document
    updated_fields: frozenset[str] = frozenset()
    views: dict[str, Any] = field(default_factory=dict)

    def view(self, name: str, build: Callable[[Document], Any]) -> Any:
        """Convert once per event, not once per subscriber."""
        if name not in self.views:
            self.views[name] = build(self.doc)
        return self.views[name]


class Subscriber:
    __slots__ = ("topic", "queue", "closer", "dropped", "direct", "waiting")

    def __init__(self, topic: Topic, queue_size: int, closer: Closer | None) -> None:
        self.topic = topic
        self.queue: asyncio.Queue[Change] = asyncio.Queue(queue_size)
        self.closer = closer
        self.dropped: tuple[int, str] | None = None
        # Delivers a change at once, True when it took it (see the module docstring).
        self.direct: Callable[[Change], bool] | None = None
        self.waiting = False  # the reader is in get(): it has finished with every change it took

    def take_now(self, change: Change) -> bool:
        """``direct`` delivers the change, if the reader waits with nothing queued and it can."""
        return self.direct is not None and self.waiting and self.queue.empty() and self.direct(change)

    def offer(self, change: Change) -> bool:
        """Queue without waiting; False when the queue is full."""
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            return False
        return True

    async def get(self) -> Change:
        if self.dropped is not None:
            raise SubscriberDropped(self.dropped[1])
        self.waiting = True
        try:
            change = await self.queue.get()
        finally:
            self.waiting = False
        if self.dropped is not None:
            raise SubscriberDropped(self.dropped[1])
        return change

    def drop(self, code: int, reason: str) -> asyncio.Task[None] | None:
        if self.dropped is not None:
            return None
        self.dropped = (code, reason)
        self.direct = None
        # Free what is queued and wake a reader blocked on get().
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(Change("", "dropped", {}))
        return self.closer(code, reason) if self.closer is not None else None


class Hub:
    """Topic → subscribers. ``publish`` is synchronous and O(matching subscribers)."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self.topics: dict[Topic, set[Subscriber]] = {}
        self.ready = asyncio.Event()
        self.closing = False
        self.dropped_slow = 0
        self.delivered_at_once = 0  # changes a subscriber's ``direct`` took without queueing

    def subscribe(self, topic: Topic, closer: Closer | None = None) -> Subscriber:
        if self.closing:
            raise StreamUnavailable("The gateway is shutting down")
        subscriber = Subscriber(topic, self.queue_size, closer)
        self.topics.setdefault(topic, set()).add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscribers = self.topics.get(subscriber.topic)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self.topics[subscriber.topic]

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self.topics.values())

    def publish(self, topic: Topic, change: Change) -> None:
        subscribers = self.topics.get(topic)
        if not subscribers:
            return
        slow = []
        for subscriber in subscribers:
            if subscriber.take_now(change):
                self.delivered_at_once += 1
            elif not subscriber.offer(change):
                slow.append(subscriber)
        for subscriber in slow:
            self.dropped_slow += 1
            log.warning("dropping slow subscriber of %s", topic)
            self.unsubscribe(subscriber)
            subscriber.drop(*TOO_SLOW)

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Subscriptions start only once the watcher's change stream is open."""
        if self.ready.is_set():
            return
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            raise StreamUnavailable("Live events are not available on this gateway right now") from None

    async def close_all(self, code: int = GOING_AWAY[0], reason: str = GOING_AWAY[1], timeout: float = 5.0) -> None:
        """Graceful shutdown: every subscriber's connection gets a close frame."""
        self.closing = True
        subscribers = [s for group in self.topics.values() for s in group]
        self.topics.clear()
        tasks = [t for s in subscribers if (t := s.drop(code, reason)) is not None]
        if tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait(tasks, timeout=timeout)
