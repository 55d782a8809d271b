"""A gateway app with chosen settings, over the test's database, and an HTTP client for it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from gateway.core.clock import FrozenClock
from gateway.core.settings import Settings
from gateway.services import Services
from gateway.store.mongo import Database
from gateway.web.app import create_app
from tests.conftest import JWT_SECRET


@contextlib.asynccontextmanager
async def app_with(tmp_path: Path, mongo_uri: str, db: Database, **options: Any) -> AsyncIterator[Any]:
    """A started gateway app configured with ``options``, for WebSocket transports."""
    settings = Settings(mongodb_uri=mongo_uri, jwt_secret=JWT_SECRET, data_dir=tmp_path, **options)
    services = Services(settings=settings, db=db, clock=FrozenClock(), jwt_secret=JWT_SECRET)
    application = create_app(settings, services=services, run_workers=False)
    async with application.router.lifespan_context(application):
        yield application


@contextlib.asynccontextmanager
async def gateway_with(
    tmp_path: Path, mongo_uri: str, db: Database, *, client_address: str = "127.0.0.1", **options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of a gateway configured with ``options`` (LOYALTY_* settings by field name)."""
    settings = Settings(mongodb_uri=mongo_uri, jwt_secret=JWT_SECRET, data_dir=tmp_path, **options)
    services = Services(settings=settings, db=db, clock=FrozenClock(), jwt_secret=JWT_SECRET)
    application = create_app(settings, services=services, run_workers=False)
    transport = httpx.ASGITransport(app=application, client=(client_address, 40000))
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(transport=transport, base_url="http://gateway") as client,
    ):
        yield client
