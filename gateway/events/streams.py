"""Live events from MongoDB change streams: the per-process watcher and the event streams.

One watcher per gateway process opens ONE change stream on the database (ledger,
tier_changes, redemptions, gifts) and publishes into the process's hub. Every
replica runs its own watcher, so a change committed through any replica reaches
subscribers everywhere. After a transient error the watcher resumes from the last
resume token, so it neither misses nor repeats changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from pymongo.errors import OperationFailure, PyMongoError

from gateway.events.hub import Change, Closer, Hub, SubscriberDropped, Topic
from gateway.store import ledger as ledger_store
from gateway.store.mongo import Database, Document
from gateway.store.program import program_cache

log = logging.getLogger(__name__)

LEDGER = "ledger"
TIER_CHANGES = "tier_changes"
REDEMPTIONS = "redemptions"
GIFTS = "gifts"
WATCHED = (LEDGER, TIER_CHANGES, REDEMPTIONS, GIFTS)
CHANGE_STREAM_HISTORY_LOST = 286


def balance_topic(member_id: str) -> Topic:
    return ("balance", member_id)


def tier_topic(member_id: str) -> Topic:
    return ("tier", member_id)


def redemption_topic(member_id: str) -> Topic:
    return ("redemption", member_id)


def gift_topic(gift_id: str) -> Topic:
    return ("gift", gift_id)


ACTIVITY: Topic = ("activity",)

PROGRAM = "program"  # any change drops the process's cached program (gateway.store.program)

PIPELINE: list[Document] = [
    {
        "$match": {
            "$or": [
                {"ns.coll": {"$in": list(WATCHED)}, "operationType": {"$in": ["insert", "update", "replace"]}},
                {"ns.coll": PROGRAM},
            ]
        }
    }
]


def route(change: Document) -> list[tuple[Topic, Change]]:
    """Which topics a raw change-stream document feeds (pure; unit-tested)."""
    collection = change["ns"]["coll"]
    operation = change["operationType"]
    doc = change.get("fullDocument")
    if doc is None:  # updated, then deleted before the lookup
        return []
    updated = frozenset((change.get("updateDescription") or {}).get("updatedFields", {}))
    event = Change(collection, operation, doc, updated)
    if collection == LEDGER and operation == "insert":
        return [(balance_topic(doc["memberId"]), event), (ACTIVITY, event)]
    if collection == TIER_CHANGES and operation == "insert":
        return [(tier_topic(doc["memberId"]), event)]
    if collection == REDEMPTIONS and "memberId" in doc:
        return [(redemption_topic(doc["memberId"]), event)]
    if collection == GIFTS and (operation != "update" or any(f.split(".")[0] == "stock" for f in updated)):
        return [(gift_topic(str(doc["_id"])), event)]
    return []


async def watch_changes(services: Any, *, retry_delay: float = 0.5) -> None:
    """The worker: feed the hub from one change stream until cancelled."""
    await run_watcher(services.db, services.hub, retry_delay=retry_delay)


async def run_watcher(db: Database, hub: Hub, *, retry_delay: float = 0.5) -> None:
    token: Mapping[str, Any] | None = None
    delay = retry_delay
    programs = program_cache(db)
    while True:
        try:
            async with await db.db.watch(
                PIPELINE, full_document="updateLookup", resume_after=token, max_await_time_ms=500
            ) as stream:
                programs.stream_opened()
                try:
                    hub.ready.set()
                    delay = retry_delay
                    while stream.alive:
                        change = await stream.try_next()
                        token = stream.resume_token
                        if change is not None:
                            if (change.get("ns") or {}).get("coll") == PROGRAM:
                                programs.observe(change)
                            else:
                                _dispatch(hub, change)
                finally:
                    programs.stream_lost()
        except asyncio.CancelledError:
            raise
        except OperationFailure as exc:
            if exc.code == CHANGE_STREAM_HISTORY_LOST:
                # The oplog no longer holds our position: start from now. Balance
                # subscribers fill any gap from the ledger by position.
                log.error("change stream history lost; restarting from now")
                token = None
            else:
                log.warning("change stream failed (%s); resuming in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        except PyMongoError as exc:
            log.warning("change stream failed (%s); resuming in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def _dispatch(hub: Hub, change: Document) -> None:
    """One malformed document (another feature's bug) is logged and skipped, never allowed
    to stop the watcher and with it every live stream of this gateway."""
    try:
        routes = route(change)
    except Exception:
        log.exception("skipping a change the streams cannot route: %s", change.get("documentKey"))
        return
    for topic, event in routes:
        hub.publish(topic, event)


async def balance_entries(
    services: Any, member_id: str, after: int | None, closer: Closer | None = None
) -> AsyncIterator[Change]:
    """A member's ledger entries after position ``after``, replayed then live, in order,
    each exactly once. Without ``after``: live entries from now on.

    Subscribe to the hub first (buffering), then replay from the ledger, then drop live
    entries at or before the last replayed position: nothing committed in between is
    lost or repeated. A live entry beyond the next position (the watcher lost history)
    is preceded by the missing entries, read from the ledger.
    """
    hub = services.hub
    db: Database = services.db
    subscriber = hub.subscribe(balance_topic(member_id), closer)
    try:
        await hub.wait_ready()
        last = after
        if after is not None:
            async for entry in ledger_store.between(db, member_id, after, None):
                yield Change(LEDGER, "replay", entry)
                last = entry["seq"]
        while True:
            try:
                change = await subscriber.get()
            except SubscriberDropped:
                await _until_disconnected(closer)
                return
            seq = change.doc["seq"]
            if last is not None:
                if seq <= last:
                    continue
                if seq > last + 1:
                    async for missed in ledger_store.between(db, member_id, last, seq):
                        yield Change(LEDGER, "replay", missed)
            yield change
            last = seq
    finally:
        hub.unsubscribe(subscriber)


async def _until_disconnected(closer: Closer | None) -> None:
    """A dropped subscriber's connection is being closed (with the reason): park until the
    connection's end cancels the operation, rather than end the stream with a ``complete``
    message on a socket that already sent its close frame."""
    if closer is not None:
        await asyncio.Event().wait()


async def live_changes(
    services: Any, topic: Topic, closer: Closer | None = None, direct: Callable[[Change], bool] | None = None
) -> AsyncIterator[Change]:
    """Live changes of one topic from the moment of subscribing. With ``direct``, the hub hands
    it each change that arrives while this stream waits (gateway.events.hub): only the changes
    it declines come out here."""
    hub = services.hub
    subscriber = hub.subscribe(topic, closer)
    subscriber.direct = direct
    try:
        await hub.wait_ready()
        while True:
            yield await subscriber.get()
    except SubscriberDropped:
        await _until_disconnected(closer)
    finally:
        hub.unsubscribe(subscriber)
