"""Redemptions per second under contention on ONE gift: the gateway against a bare transaction.

Every redemption of the same gift writes the same gift document, so concurrent
redemptions meet as write conflicts and retry; that is the contention measured.

Paths, each with the same concurrency, the same number of orders and fresh data:

- ``bare``: a MongoDB transaction doing the minimal writes of a sale (conditional stock
  decrement, conditional balance decrement, order insert) through the same retry runner;
- ``service``: ``Redemptions.redeem`` (eligibility, member lock and settling, lots soonest-
  expiring first, ledger entry, order, idempotency record, all in one transaction);
- ``graphql``: the ``redeemGift`` mutation over HTTP (ASGI, in process), auth included.

Run: ``.venv/bin/python -m bench.redemptions [--orders 300] [--concurrency 16]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import httpx

from gateway.core.auth import Principal, Role, mint_token
from gateway.core.clock import SystemClock
from gateway.core.settings import Settings
from gateway.domain.program import DEFAULT_PROGRAM
from gateway.features.catalog import GiftSpec
from gateway.features.members import Registration, new_member_document
from gateway.features.redemptions import RedeemRequest, new_order_id
from gateway.ledger import EntryKind, LedgerTx, Memo, Source
from gateway.runtime import prepare
from gateway.services import Services
from gateway.store.embedded_mongod import EmbeddedMongo
from gateway.store.mongo import Database, create_client
from gateway.web.app import create_app

SECRET = "bench-secret-that-is-long-enough-for-hs256"
MEMBERS = 32
POINTS = 10


async def setup(db: Database, services: Services) -> str:
    """Members with plenty of points (SENIOR) and one gift with enough stock for everyone."""
    await prepare(db)
    for i in range(MEMBERS):
        doc = new_member_document(
            Registration(display_name=f"m{i}", member_id=f"m{i}"), DEFAULT_PROGRAM, services.clock.now()
        )
        doc["tier"] = "SENIOR"
        await services.members.insert(doc)

        async def work(tx: LedgerTx, member_id: str = doc["_id"]) -> dict[str, str]:
            await tx.earn(member_id, 1_000_000, Memo(EntryKind.GRANT, "bench", Source("BENCH", "b")))
            return {}

        await services.ledger.transact(work)
    spec = GiftSpec(name="Contended gift", category="bench", cost_price=1_000, points=POINTS)
    gift = await services.catalog.create(spec, 1_000_000, DEFAULT_PROGRAM)
    return gift["_id"]


async def drive(orders: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Run ``orders`` calls of ``one(i)`` with ``concurrency`` workers; returns orders per second."""
    counter = iter(range(orders))

    async def worker() -> None:
        for i in counter:
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return orders / (time.perf_counter() - started)


async def bare(db: Database, gift_id: str, orders: int, concurrency: int) -> float:
    async def one(i: int) -> None:
        member_id = f"m{i % MEMBERS}"

        async def work(session: object) -> None:
            taken = await db["gifts"].update_one(
                {"_id": gift_id, "stock": {"$gte": 1}}, {"$inc": {"stock": -1}}, session=session
            )
            paid = await db.members.update_one(
                {"_id": member_id, "balances.available": {"$gte": POINTS}},
                {"$inc": {"balances.available": -POINTS, "balances.spent": POINTS}},
                session=session,
            )
            assert taken.modified_count == paid.modified_count == 1
            await db["redemptions"].insert_one(
                {"_id": new_order_id(), "memberId": member_id, "giftId": gift_id, "quantity": 1, "points": POINTS},
                session=session,
            )

        await db.transaction(work)

    return await drive(orders, concurrency, one)


async def service(services: Services, gift_id: str, orders: int, concurrency: int) -> float:
    redemptions = services.redemptions
    admin = Principal(Role.ADMIN, "bench")

    async def one(i: int) -> None:
        await redemptions.redeem(admin, RedeemRequest(f"m{i % MEMBERS}", gift_id, 1, f"svc-{i}"))

    return await drive(orders, concurrency, one)


async def graphql(settings: Settings, services: Services, gift_id: str, orders: int, concurrency: int) -> float:
    app = create_app(settings, services=services, run_workers=False)
    query = "mutation($input: RedeemGiftInput!) { redeemGift(input: $input) { id status } }"
    tokens = [
        mint_token(SECRET, role=Role.MEMBER, subject=f"m{i}", now=services.clock.now(), ttl=timedelta(hours=1))
        for i in range(MEMBERS)
    ]
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http,
    ):

        async def one(i: int) -> None:
            variables = {"input": {"memberId": f"m{i % MEMBERS}", "giftId": gift_id, "idempotencyKey": f"gql-{i}"}}
            response = await http.post(
                "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {tokens[i % MEMBERS]}"},
            )
            body = response.json()
            assert "errors" not in body, body

        return await drive(orders, concurrency, one)


async def main(orders: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mongo = EmbeddedMongo(Path(tmp) / "mongo")
        uri = await mongo.start()
        client = create_client(uri, maxPoolSize=max(50, concurrency * 2))
        settings = Settings(mongodb_uri=uri, jwt_secret=SECRET, data_dir=Path(tmp))  # type: ignore[arg-type]
        try:
            rates: dict[str, float] = {}
            for path in ("bare", "service", "graphql"):
                db = Database(client, f"bench_{path}")
                services = Services(settings=settings, db=db, clock=SystemClock(), jwt_secret=SECRET)
                gift_id = await setup(db, services)
                await bare(db, gift_id, 20, 4)  # warm-up: connections, plan cache
                if path == "bare":
                    rates[path] = await bare(db, gift_id, orders, concurrency)
                elif path == "service":
                    rates[path] = await service(services, gift_id, orders, concurrency)
                else:
                    rates[path] = await graphql(settings, services, gift_id, orders, concurrency)
                await client.drop_database(f"bench_{path}")
        finally:
            await client.close()
            mongo.stop()
    print(f"redemptions of one gift, {orders} orders, {concurrency} concurrent, {MEMBERS} members")
    for path, rate in rates.items():
        print(f"  {path:8s} {rate:8.1f} redemptions/s")
    print(f"ratio service/bare = {rates['service'] / rates['bare']:.2f}")
    print(f"ratio graphql/bare = {rates['graphql'] / rates['bare']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.orders, args.concurrency))
