"""Concurrent spends per second: the ledger versus bare MongoDB ``update_one`` calls.

Both sides run in one process against the same fresh ``mongod``, with the same
number of spends, the same concurrency and the same members, so the printed ratio
is what the ledger costs: a transaction that locks the member, settles, consumes
lots, appends an immutable entry and stores an idempotency record, against one
guarded ``$inc`` (``{"balance": {"$gte": n}}``) that does none of that.

Run: ``.venv/bin/python -m bench.ledger_spends [--spends 400] [--members 20] [--concurrency 40]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

from bench.ledger_writes import float_points
from gateway.core.auth import Principal, Role
from gateway.core.clock import SystemClock
from gateway.core.errors import DomainError
from gateway.features.audit import audit_all
from gateway.features.deduction import CheckoutDeductions
from gateway.ledger import Ledger
from gateway.runtime import prepare
from gateway.store.embedded_mongod import EmbeddedMongo
from gateway.store.mongo import Database, create_client

OPERATOR = Principal(Role.ADMIN, "bench")


async def gather_limited(jobs: list, concurrency: int) -> float:
    """Run coroutine factories with at most ``concurrency`` in flight; returns elapsed seconds."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job) -> None:
        async with gate:
            with contextlib.suppress(DomainError):
                await job()

    started = time.perf_counter()
    await asyncio.gather(*(one(job) for job in jobs))
    return time.perf_counter() - started


async def run(spends: int, members: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mongo = EmbeddedMongo(Path(tmp))
        uri = await mongo.start()
        client = create_client(uri, maxPoolSize=concurrency + 10)
        try:
            db = Database(client, "bench")
            await prepare(db)
            ledger = Ledger(db, SystemClock())
            checkout = CheckoutDeductions(ledger)
            ids = [f"b{i}" for i in range(members)]
            for member_id in ids:
                await db.members.insert_one(
                    {
                        "_id": member_id,
                        "displayName": member_id,
                        "tier": "MEMBER",
                        "lifetimeSpend": 0,
                        "growth": 0,
                        "balances": {"available": 0, "pending": 0, "lifetimeEarned": 0, "spent": 0, "expired": 0},
                        "ledgerSeq": 0,
                    }
                )
            per_member = spends // members + 1
            await ledger.transact(float_points(ids, per_member * 10))
            await db["bare"].insert_many([{"_id": m, "balance": per_member * 10} for m in ids])

            def ledger_job(i: int):
                member_id = ids[i % members]
                return lambda: checkout.deduct(OPERATOR, member_id, f"order-{i}", 1_000_000, 10, f"spend-{i}")

            def bare_job(i: int):
                member_id = ids[i % members]
                return lambda: db["bare"].update_one(
                    {"_id": member_id, "balance": {"$gte": 10}}, {"$inc": {"balance": -10}}
                )

            # warm up both paths (connections, plan cache) outside the timing
            await gather_limited([bare_job(i) for i in range(members)], concurrency)
            await db["bare"].update_many({}, {"$set": {"balance": per_member * 10}})
            bare = await gather_limited([bare_job(i) for i in range(spends)], concurrency)
            through_ledger = await gather_limited([ledger_job(i) for i in range(spends)], concurrency)
            problems = await audit_all(db)
            spent = sum([d["balances"]["spent"] async for d in db.members.find()])
            print(f"spends: {spends} over {members} members, concurrency {concurrency}")
            print(f"bare update_one ($inc with $gte guard): {spends / bare:10.0f} /s  ({bare:.2f} s)")
            print(
                f"ledger deductPointsAtCheckout:         {spends / through_ledger:10.0f} /s  ({through_ledger:.2f} s)"
            )
            print(
                f"ratio bare/ledger: {through_ledger / bare:.1f}x  (ledger points spent: {spent}, audit: "
                f"{problems if problems else 'clean'})"
            )
        finally:
            await client.close()
            mongo.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spends", type=int, default=400)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(run(args.spends, args.members, args.concurrency))


if __name__ == "__main__":
    main()
