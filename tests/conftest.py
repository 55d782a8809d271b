"""Fixtures: one real mongod and one real tansu per test session, a clean database per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.core.auth import Role, mint_token
from gateway.core.clock import FrozenClock
from gateway.core.settings import Settings
from gateway.services import Services
from gateway.store.embedded_mongod import EmbeddedMongo
from gateway.store.mongo import Database, create_client
from gateway.web.app import create_app
from tests.support.services import TansuBroker

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256"
START = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # a Monday, 12:00 in Asia/Shanghai


@pytest.fixture(scope="session")
async def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    mongo = EmbeddedMongo(tmp_path_factory.mktemp("mongo"))
    uri = await mongo.start()
    yield uri
    mongo.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    broker = TansuBroker(tmp_path_factory.mktemp("tansu") / "tansu.log")
    yield broker.start()
    broker.stop()


@pytest.fixture(scope="session")
async def mongo_client(mongo_uri: str) -> AsyncIterator[Any]:
    client = create_client(mongo_uri, maxPoolSize=200)
    yield client
    await client.close()


@pytest.fixture
async def db(mongo_client: Any) -> AsyncIterator[Database]:
    """A fresh database for every test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield Database(mongo_client, name)
    await mongo_client.drop_database(name)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def settings(tmp_path: Path, mongo_uri: str) -> Settings:
    return Settings(mongodb_uri=mongo_uri, jwt_secret=JWT_SECRET, data_dir=tmp_path)  # type: ignore[arg-type]


@pytest.fixture
def services(settings: Settings, db: Database, clock: FrozenClock) -> Services:
    return Services(settings=settings, db=db, clock=clock, jwt_secret=JWT_SECRET)


@pytest.fixture
async def app(settings: Settings, services: Services) -> AsyncIterator[Any]:
    application = create_app(settings, services=services, run_workers=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


def token(role: Role, subject: str = "tester", *, ttl: timedelta = timedelta(hours=1)) -> str:
    return mint_token(JWT_SECRET, role=role, subject=subject, now=datetime.now(UTC), ttl=ttl)


# Collections a refused request may legitimately write: rate-limit counters (every request counts).
WRITTEN_ON_REFUSAL: frozenset[str] = frozenset({"rate_limits"})


async def database_state(db: Database) -> dict[str, list[Any]]:
    """Every document of every collection, in _id order: what a refused mutation must leave as it was."""
    state: dict[str, list[Any]] = {}
    for name in sorted(await db.db.list_collection_names()):
        if name not in WRITTEN_ON_REFUSAL:
            state[name] = await db[name].find().sort("_id", 1).to_list()
    return state


class GraphQLClient:
    """Posts operations the way a front end does; returns the decoded response.

    Given the test's database, ``error_code`` also proves that a refused mutation changed nothing,
    so every test that expects a refusal checks "never a half-applied change" too.
    """

    def __init__(self, http: httpx.AsyncClient, db: Database | None = None) -> None:
        self.http = http
        self.db = db

    async def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        api_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if api_key:
            headers["X-Api-Key"] = api_key
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        return response.json()

    async def ok(self, query: str, variables: dict[str, Any] | None = None, **auth: Any) -> dict[str, Any]:
        """The data of a response that must have no errors."""
        body = await self(query, variables, **auth)
        assert "errors" not in body, body.get("errors")
        return body["data"]

    async def error_code(self, query: str, variables: dict[str, Any] | None = None, **auth: Any) -> str:
        """The code of the first error of a response that must fail (and, for a mutation, change nothing)."""
        mutation = self.db is not None and query.lstrip().startswith("mutation")
        before = await database_state(self.db) if mutation and self.db is not None else None
        body = await self(query, variables, **auth)
        assert body.get("errors"), body
        if before is not None and self.db is not None:
            assert await database_state(self.db) == before, f"a refused mutation changed the database: {body}"
        return body["errors"][0]["extensions"]["code"]


@pytest.fixture
def gql(http: httpx.AsyncClient, db: Database) -> GraphQLClient:
    return GraphQLClient(http, db)


@pytest.fixture
def admin() -> str:
    return token(Role.ADMIN, "admin-1")
