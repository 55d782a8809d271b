"""analyticsUpdated: live KPI updates on every replica, throttled, aggregates only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.core.auth import Role
from gateway.core.settings import Settings
from gateway.services import Services
from tests.conftest import JWT_SECRET, token
from tests.support.ledger_helpers import add_member, earn, spend
from tests.support.stream_helpers import Gateway, gateway, ws_client

UPDATES = "subscription { analyticsUpdated { entries issued redeemed expired reversed } }"


@pytest.fixture
async def replicas(settings: Settings, services: Services, db, clock) -> AsyncIterator[tuple[Gateway, Gateway]]:  # noqa: ANN001
    other = Services(settings=settings, db=db, clock=clock, jwt_secret=JWT_SECRET)
    async with gateway(settings, services) as a, gateway(settings, other) as b:
        yield a, b


async def _wait_subscribers(gw: Gateway, count: int) -> None:
    while gw.services.hub.subscriber_count() < count:
        await asyncio.sleep(0.01)


async def test_a_change_through_one_replica_updates_a_dashboard_on_another(replicas, services: Services) -> None:  # noqa: ANN001
    a, b = replicas
    await add_member(services, "m1")
    async with ws_client(b.url, token(Role.DASHBOARD, "wall")) as client:
        await client.subscribe(UPDATES)
        await _wait_subscribers(b, 1)
        await earn(a.services.ledger, "m1", 120)
        await spend(a.services.ledger, "m1", 20)
        seen = {"entries": 0, "issued": 0, "redeemed": 0, "expired": 0, "reversed": 0}
        while seen["entries"] < 2:
            update = (await client.next_data())["analyticsUpdated"]
            seen = {k: seen[k] + update[k] for k in seen}
        assert seen == {"entries": 2, "issued": 120, "redeemed": 20, "expired": 0, "reversed": 0}


async def test_members_may_not_subscribe(replicas) -> None:  # noqa: ANN001
    a, _ = replicas
    async with ws_client(a.url, token(Role.MEMBER, "m1")) as client:
        await client.subscribe(UPDATES)
        message = await client.receive()
        assert message["type"] == "error", message
        assert message["payload"][0]["extensions"]["code"] == "FORBIDDEN"
