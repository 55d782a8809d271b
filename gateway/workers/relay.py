"""Kafka out: every ledger entry (balance event) published to ``settings.kafka_balance_topic``.

- Source: a change stream on the ledger's inserts, i.e. what MongoDB committed.
- At-least-once: the change-stream resume token is stored in MongoDB only after every
  event before it was acknowledged by Kafka; after a crash or restart the relay resumes
  from the stored token, so an event may be published twice but never skipped.
  Consumers de-duplicate on ``eventId`` (the ledger entry id, stable across retries).
- One publisher across gateways: a lease (``gateway.store.leases``, kept in ``stream_relays``) with an expiry in
  MongoDB's own clock (``$$NOW``), renewed while publishing. Other gateways wait and
  take over when the lease expires or is released on shutdown.
- Keyed by member id, so one member's events stay ordered within a partition.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pymongo.errors import OperationFailure, PyMongoError

from gateway.core.clock import as_utc
from gateway.core.metrics import RELAY_HOLDING, RELAY_LAG, RELAY_PUBLISHED
from gateway.events.kafka import ensure_topics, new_producer
from gateway.store import ledger as ledger_store
from gateway.store.leases import Lease, new_owner
from gateway.store.mongo import Database, Document

log = logging.getLogger(__name__)

LEASES = "stream_relays"  # the relay's lease keeps its own collection: it stores the published position
BALANCE_RELAY = "balance-relay"
EVENT_TYPE = "balance.changed"
SCHEMA_VERSION = 1
BATCH = 500
RESUME_IMPOSSIBLE = {280, 286}  # ChangeStreamFatalError, ChangeStreamHistoryLost
BACKFILL_MARGIN = timedelta(minutes=10)  # entry ids carry the writing gateway's clock: allow for skew


def balance_event(entry: Document) -> Document:
    """The JSON published for one ledger entry (documented in docs/streams.md)."""
    source = entry["source"]
    return {
        "eventId": str(entry["_id"]),
        "type": EVENT_TYPE,
        "version": SCHEMA_VERSION,
        "memberId": entry["memberId"],
        "position": entry["seq"],
        "kind": entry["kind"],
        "points": entry["points"],
        "delta": entry["delta"],
        "balancesAfter": entry["balancesAfter"],
        "reason": entry.get("reason"),
        "source": {"type": source["type"], "id": source["id"], "partnerId": source.get("partnerId")},
        "idempotencyKey": entry.get("idempotencyKey"),
        "createdAt": _iso(entry["createdAt"]),
    }


def encode(entry: Document) -> bytes:
    return orjson.dumps(balance_event(entry))


def _iso(value: datetime) -> str:
    return as_utc(value).isoformat().replace("+00:00", "Z")


class BalanceRelay:
    def __init__(self, db: Database, settings: Any, *, owner: str | None = None) -> None:
        self.db = db
        self.settings = settings
        self.topic: str = settings.kafka_balance_topic
        self.ttl: float = getattr(settings, "relay_lease_seconds", 15.0)
        self.lease = Lease(db, BALANCE_RELAY, owner or new_owner(), self.ttl, collection=LEASES)
        self.holding = asyncio.Event()
        self.published = 0
        self.status: dict[str, Any] = {"holdingLease": False, "published": 0}

    async def run(self) -> None:
        """Until cancelled: hold the lease and publish, or wait to take it over."""
        await ensure_topics(self.settings, self.topic)
        producer = new_producer(self.settings, linger_ms=5)
        await producer.start()
        try:
            while True:
                lease = await self.lease.acquire()
                if lease is None:
                    await asyncio.sleep(self.ttl / 3)
                    continue
                log.info("balance relay %s holds the lease", self.lease.owner)
                self.status["holdingLease"] = True
                await self._publish(producer, lease)
                self.holding.clear()
                self.status["holdingLease"] = False
                log.warning("balance relay %s lost the lease", self.lease.owner)
        finally:
            self.status["holdingLease"] = False
            await producer.stop()

    async def _publish(self, producer: Any, lease: Document) -> None:
        """Publish while we hold the lease; returns when it is lost."""
        token = lease.get("resumeToken")
        published = token
        try:
            async with await self._open(producer, lease) as stream:
                if token is None or stream.resume_token != token:
                    # Fix the starting point now, so nothing committed from here on is skipped.
                    published = stream.resume_token
                    if not await self.lease.renew(published):
                        return
                self.holding.set()
                RELAY_HOLDING.set(1)
                renewed = asyncio.get_running_loop().time()
                while True:
                    batch: list[Document] = []
                    while len(batch) < BATCH:
                        change = await stream.try_next()
                        if change is None:
                            break
                        batch.append(change)
                    if batch:
                        sent = [
                            await producer.send(
                                self.topic,
                                value=encode(c["fullDocument"]),
                                key=c["fullDocument"]["memberId"].encode(),
                            )
                            for c in batch
                        ]
                        await asyncio.gather(*sent)  # every event acknowledged before the position moves
                        self.published += len(batch)
                        self.status.update(published=self.published, lastPublishedAt=_iso(datetime.now(UTC)))
                        RELAY_PUBLISHED.inc(len(batch))
                        newest = as_utc(batch[-1]["fullDocument"]["createdAt"])
                        RELAY_LAG.set(max(0.0, (datetime.now(UTC) - newest).total_seconds()))
                    else:
                        RELAY_LAG.set(0)  # nothing waiting: caught up
                    position = stream.resume_token
                    now = asyncio.get_running_loop().time()
                    if batch or position != published or now - renewed > self.ttl / 3:
                        if not await self.lease.renew(position):
                            return
                        published, renewed = position, now
        finally:
            # Graceful stop (or error): store the last fully published position and let another relay in.
            self.holding.clear()
            RELAY_HOLDING.set(0)
            try:
                await asyncio.shield(self.lease.release(published))
            except (PyMongoError, asyncio.CancelledError):
                log.warning("balance relay could not release its lease; it will expire")

    def _watch(self, **options: Any) -> Any:
        return ledger_store.watch_new_entries(self.db, max_await_time_ms=int(self.ttl * 1000 / 6), **options)

    async def _open(self, producer: Any, lease: Document) -> Any:
        """The change stream from the stored position; if MongoDB no longer has it (the oplog
        rolled over while no relay ran), a new stream from now plus a republish of the ledger
        since the position was stored (duplicates, never a gap)."""
        token = lease.get("resumeToken")
        if token is None:
            return await self._watch()
        try:
            return await self._watch(resume_after=token)
        except OperationFailure as exc:
            if exc.code not in RESUME_IMPOSSIBLE:
                raise
        since = as_utc(lease.get("storedAt") or datetime(1970, 1, 1, tzinfo=UTC)) - BACKFILL_MARGIN
        log.error("balance relay: stored position is gone from the oplog; republishing entries since %s", since)
        stream = await self._watch()  # opened first: entries committed during the backfill come through it
        try:
            await self.backfill(producer, since)
        except BaseException:
            await stream.close()
            raise
        return stream

    async def backfill(self, producer: Any, since: datetime) -> int:
        """Publish every ledger entry created since ``since`` (by entry id time); returns the count."""
        count = 0
        batch: list[Any] = []
        async for entry in ledger_store.created_since(self.db, since):
            batch.append(await producer.send(self.topic, value=encode(entry), key=entry["memberId"].encode()))
            if len(batch) >= BATCH:
                await asyncio.gather(*batch)
                count += len(batch)
                batch = []
        await asyncio.gather(*batch)
        return count + len(batch)


async def run_relay(services: Any) -> None:
    """The worker (started only when LOYALTY_KAFKA_BOOTSTRAP_SERVERS is set)."""
    from gateway.workers.supervisor import worker_state

    relay = BalanceRelay(services.db, services.settings)
    relay.status = worker_state(services, "balance-relay").detail
    relay.status.update(holdingLease=False, published=relay.status.get("published", 0))
    relay.published = relay.status["published"]
    await relay.run()
