"""A subscription lives as long as its token: closed with 4403 at expiry, resumed with a fresh token."""

from __future__ import annotations

from datetime import timedelta

from gateway.core.auth import Role
from gateway.core.settings import Settings
from gateway.services import Services
from tests.conftest import token
from tests.support.ledger_helpers import add_member, earn
from tests.support.stream_helpers import gateway, ws_client

BALANCE = "subscription($m: String!, $after: Int) { balanceChanged(memberId: $m, after: $after) { position } }"


async def test_expired_token_closes_the_socket_and_a_fresh_one_resumes_from_the_position(
    settings: Settings, services: Services
) -> None:
    await add_member(services, "m1")
    await earn(services.ledger, "m1", 10)
    async with gateway(settings, services) as replica:
        short_lived = token(Role.MEMBER, "m1", ttl=timedelta(seconds=5))
        async with ws_client(replica.url, short_lived) as client:
            await client.subscribe(BALANCE, {"m": "m1", "after": 0})
            seen = (await client.next_data())["balanceChanged"]["position"]
            assert seen == 1
            code, reason = await client.close_code(timeout=60)
        assert (code, reason) == (4403, "Token expired")

        await earn(services.ledger, "m1", 20)  # happens while the client is away
        async with ws_client(replica.url, token(Role.MEMBER, "m1")) as client:
            await client.subscribe(BALANCE, {"m": "m1", "after": seen})
            assert (await client.next_data())["balanceChanged"]["position"] == 2
            await earn(services.ledger, "m1", 5)
            assert (await client.next_data())["balanceChanged"]["position"] == 3
