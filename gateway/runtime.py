"""Bring the gateway's dependencies up and down: MongoDB (embedded or external)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.core.clock import Clock, SystemClock
from gateway.core.settings import Settings
from gateway.services import Services
from gateway.store.embedded_mongod import EmbeddedMongo
from gateway.store.mongo import Database, create_client
from gateway.store.program import seed_program

log = logging.getLogger(__name__)


@asynccontextmanager
async def mongodb_uri(settings: Settings) -> AsyncIterator[str]:
    """The configured URI, or a managed local mongod kept running for the duration."""
    if settings.mongodb_uri:
        yield settings.mongodb_uri
        return
    embedded = EmbeddedMongo(settings.data_dir)
    log.info("starting embedded mongod in %s", settings.data_dir.resolve())
    uri = await embedded.start()
    log.info("embedded mongod is primary at %s", embedded.host)
    try:
        yield uri
    finally:
        log.info("stopping embedded mongod")
        embedded.stop()


async def prepare(db: Database) -> None:
    """Indexes and the default program: idempotent, run at every start."""
    await db.ensure_indexes()
    await seed_program(db)


@asynccontextmanager
async def open_services(settings: Settings, clock: Clock | None = None) -> AsyncIterator[Services]:
    async with mongodb_uri(settings) as uri:
        client = create_client(uri, serverSelectionTimeoutMS=10_000)
        try:
            db = Database(client, settings.database)
            await prepare(db)
            yield Services(settings=settings, db=db, clock=clock or SystemClock())
        finally:
            await client.close()
