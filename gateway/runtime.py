"""Bring the gateway's dependencies up and down: MongoDB (embedded or external)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pymongo.errors import ConnectionFailure

from gateway.core.clock import Clock, SystemClock
from gateway.core.settings import Settings
from gateway.services import Services
from gateway.store.embedded_mongod import EmbeddedMongo
from gateway.store.members import backfill_search_keys
from gateway.store.mongo import Database, create_client
from gateway.store.program import seed_program

log = logging.getLogger(__name__)


@asynccontextmanager
async def embedded_mongod(settings: Settings) -> AsyncIterator[EmbeddedMongo | None]:
    """None with a configured URI, else a managed local mongod, supervised for the duration."""
    if settings.mongodb_uri:
        yield None
        return
    embedded = EmbeddedMongo(
        settings.data_dir,
        max_restarts=settings.embedded_mongod_max_restarts,
        backoff_seconds=settings.embedded_mongod_restart_backoff_seconds,
    )
    log.info("starting embedded mongod in %s", settings.data_dir.resolve())
    await embedded.start()
    log.info("embedded mongod is primary at %s", embedded.host)
    embedded.supervise()
    try:
        yield embedded
    finally:
        log.info("stopping embedded mongod")
        embedded.stop()


@asynccontextmanager
async def mongodb_uri(settings: Settings) -> AsyncIterator[str]:
    """The configured URI, or a managed local mongod kept running for the duration."""
    async with embedded_mongod(settings) as embedded:
        yield embedded.uri if embedded is not None else str(settings.mongodb_uri)


async def prepare(db: Database) -> None:
    """Indexes and the default program: idempotent, run at every start."""
    await db.ensure_indexes()
    await seed_program(db)
    await backfill_search_keys(db)


async def prepare_when_reachable(db: Database, timeout: float = 60.0) -> None:
    """``prepare``, retried while MongoDB is still coming up (a container start) or a connection
    was interrupted under it (the driver cleared its pool: AutoReconnect is a ConnectionFailure)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await prepare(db)
            return
        except ConnectionFailure as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("MongoDB not reachable yet (%s); retrying", type(exc).__name__)
            await asyncio.sleep(1.0)


@asynccontextmanager
async def open_services(settings: Settings, clock: Clock | None = None) -> AsyncIterator[Services]:
    async with embedded_mongod(settings) as embedded:
        uri = embedded.uri if embedded is not None else str(settings.mongodb_uri)
        # A short server selection: during an outage requests fail in about this long
        # (SERVICE_UNAVAILABLE) instead of hanging; the first start waits longer.
        client = create_client(uri, serverSelectionTimeoutMS=settings.mongodb_timeout_ms)
        try:
            db = Database(client, settings.database)
            await prepare_when_reachable(db)
            services = Services(settings=settings, db=db, clock=clock or SystemClock())
            services.extras["embedded_mongod"] = embedded
            yield services
        finally:
            await client.close()
