"""A coupon pool's moves stream as the gift's stock (giftStockChanged), and no code ever streams."""

from __future__ import annotations

import asyncio
import json

from gateway.core.auth import Principal, Role
from gateway.core.settings import Settings
from gateway.features.catalog import GiftSpec
from gateway.features.redemptions import RedeemRequest
from gateway.services import Services
from gateway.store.program import load_program
from tests.conftest import token
from tests.support.catalog_helpers import member_with
from tests.support.stream_helpers import gateway, ws_client

ADMIN = Principal(Role.ADMIN, "ops-1")


async def test_pool_changes_stream_as_stock_and_the_code_stays_out_of_every_event(
    settings: Settings, services: Services
) -> None:
    program = await load_program(services.db)
    spec = GiftSpec(name="配送券", category="coupons", cost_price=500, points=100)
    gift = await services.catalog.create(spec, 0, program, kind="VIRTUAL")
    await member_with(services, "m1", points=1000)
    async with gateway(settings, services) as instance, ws_client(instance.url, token(Role.MEMBER, "m1")) as client:
        await client.subscribe(
            "subscription($g: String!) { giftStockChanged(giftId: $g) { giftId stock soldOut } }", {"g": gift["_id"]}
        )
        await client.subscribe('subscription { redemptionUpdated(memberId: "m1") { id giftId status points } }')
        while instance.services.hub.subscriber_count() < 2 or not instance.services.hub.ready.is_set():
            await asyncio.sleep(0.005)

        await services.coupons.import_codes(ADMIN, gift["_id"], ["SHIP-FREE-1", "SHIP-FREE-2"], expires_at=None)
        assert (await client.next_data())["giftStockChanged"] == {"giftId": gift["_id"], "stock": 2, "soldOut": False}

        order = await services.redemptions.redeem(
            Principal(Role.MEMBER, "m1"),
            RedeemRequest(member_id="m1", gift_id=gift["_id"], quantity=2, idempotency_key="k"),
        )
        seen = [await client.receive() for _ in range(2)]
        events = {next(iter(m["payload"]["data"])): m["payload"]["data"] for m in seen}
        assert events["giftStockChanged"]["giftStockChanged"] == {"giftId": gift["_id"], "stock": 0, "soldOut": True}
        assert events["redemptionUpdated"]["redemptionUpdated"]["status"] == "FULFILLED"
        assert order["status"] == "FULFILLED"

        await services.redemptions.cancel(Principal(Role.MEMBER, "m1"), order["_id"], "not needed")
        seen += [await client.receive() for _ in range(2)]
        events = {next(iter(m["payload"]["data"])): m["payload"]["data"] for m in seen[2:]}
        assert events["giftStockChanged"]["giftStockChanged"]["stock"] == 2  # the codes went back to the pool
        assert events["redemptionUpdated"]["redemptionUpdated"]["status"] == "CANCELLED"
        for message in seen:
            assert "SHIP-FREE" not in json.dumps(message)
