"""A list of members asking for their next tier under a validity window costs one aggregate, not one each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.store.mongo import Database
from gateway.web.app import create_app
from tests.conftest import JWT_SECRET, GraphQLClient
from tests.support.commands import logged_services
from tests.support.points_helpers import UPDATE_PROGRAM, purchase

ENTITIES = """query($r: [_Any!]!) {
  _entities(representations: $r) { ... on Member { id tierProgress { value } nextTier { tier { code } remaining } } }
}"""


@pytest.fixture
async def counted(mongo_uri: str, db: Database, settings: Any, clock: Any) -> AsyncIterator[tuple[Any, Any]]:
    async with logged_services(mongo_uri, db, settings, clock, JWT_SECRET) as (services, counter):
        app = create_app(settings, services=services, run_workers=False)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http,
        ):
            yield GraphQLClient(http), counter


@pytest.mark.parametrize("validity_days", [365, None])
async def test_next_tier_of_many_members_is_one_query_whatever_their_number(counted, admin, validity_days):
    gql, counter = counted
    if validity_days:
        await gql.ok(UPDATE_PROGRAM, {"input": {"tierPolicy": {"validityDays": validity_days}}}, token=admin)
    amounts = {f"m{i}": 10_000 * (i + 1) for i in range(6)}
    for member_id, amount in amounts.items():
        await purchase(gql, admin, member_id, f"o-{member_id}", amount)
    representations = [{"__typename": "Member", "id": m} for m in amounts]

    counter.commands.clear()
    data = await gql.ok(ENTITIES, {"r": representations}, token=admin)

    assert counter.commands.count("aggregate") == (1 if validity_days else 0)
    for entity in data["_entities"]:
        spent = amounts[entity["id"]]
        assert entity["tierProgress"]["value"] == spent
        expected = 38_000 - spent if spent < 38_000 else 200_000 - spent
        assert entity["nextTier"]["remaining"] == expected
