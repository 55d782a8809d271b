"""A storefront page for one member costs a fixed number of MongoDB round trips, whatever its size."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.core.auth import Role
from gateway.domain.calendar import Period
from gateway.domain.catalog import Limits
from gateway.domain.program import DEFAULT_PROGRAM
from gateway.features.catalog import GiftSpec
from gateway.store.mongo import Database
from gateway.web.app import create_app
from tests.conftest import JWT_SECRET, GraphQLClient, token
from tests.support.commands import logged_services
from tests.support.ledger_helpers import add_member, earn

PAGE = """query($first: Int!, $memberId: String) {
  gifts(first: $first, memberId: $memberId) {
    edges { node { id name stock status price { points cash onOffer } eligibility { canRedeem reason } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


@pytest.fixture
async def counted(mongo_uri: str, db: Database, settings: Any, clock: Any) -> AsyncIterator[tuple[Any, Any]]:
    """A gateway whose MongoDB client logs every command, on the test's database."""
    async with logged_services(mongo_uri, db, settings, clock, JWT_SECRET) as (services, counter):
        app = create_app(settings, services=services, run_workers=False)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gateway") as http,
        ):
            yield GraphQLClient(http), counter, services


async def test_a_page_for_one_member_costs_a_fixed_number_of_round_trips(counted):
    gql, counter, services = counted
    catalog = services.catalog
    for i in range(60):
        limits = Limits(per_member=3, period=Period.WEEK) if i % 2 else Limits()
        spec = GiftSpec(name=f"Gift {i}", category="misc", cost_price=10_000, points=100 + i, limits=limits)
        await catalog.create(spec, stock=i % 7, program=DEFAULT_PROGRAM)
    await add_member(services, "shopper")
    await services.db.members.update_one({"_id": "shopper"}, {"$set": {"tier": "SENIOR"}})
    await earn(services.ledger, "shopper", 130)
    shopper = token(Role.MEMBER, "shopper")

    async def cost(first: int) -> tuple[list[str], list[dict[str, Any]]]:
        counter.clear()
        data = await gql.ok(PAGE, {"first": first, "memberId": "shopper"}, token=shopper)
        return list(counter.collections), [e["node"] for e in data["gifts"]["edges"]]

    small, small_page = await cost(5)
    large, large_page = await cost(50)
    assert len(small_page) == 5 and len(large_page) == 50
    # the page, the member, their recent orders of the limited gifts; and the program unless this
    # process has it cached (whether it does depends on its change stream being open just then)
    for read in (small, large):
        assert sorted(c for c in read if c != "program") == ["gifts", "members", "redemptions"], read
        assert read.count("program") <= 1, read
    reasons = {node["eligibility"]["reason"] for node in large_page}
    assert reasons == {None, "INSUFFICIENT_POINTS"}
    public = (await gql.ok(PAGE, {"first": 3}))["gifts"]["edges"]
    assert [e["node"]["eligibility"] for e in public] == [None, None, None]


ENTITIES = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Gift { id name } } }"


async def test_federated_gift_references_are_batched(counted, admin):
    gql, counter, services = counted
    ids = []
    for i in range(20):
        spec = GiftSpec(name=f"Gift {i}", category="misc", cost_price=10_000, points=100)
        ids.append((await services.catalog.create(spec, stock=5, program=DEFAULT_PROGRAM))["_id"])
    counter.commands.clear()
    data = await gql.ok(ENTITIES, {"r": [{"__typename": "Gift", "id": gift_id} for gift_id in ids]})
    assert [e["id"] for e in data["_entities"]] == ids
    assert counter.commands == ["find"]  # one query for twenty references
