"""The storefront page and `{ tiers { code } }`: the gateway against a hand-written endpoint.

Both servers run as their own process (uvicorn, one worker, uvloop + httptools) on the
same mongod and the same data; the load generator (bench.loadgen: keep-alive
connections, one request in flight each) runs here. Before measuring, the benchmark
asks both for each document and stops unless the answers are byte-identical. Rounds
alternate gateway and baseline so that noise on this shared machine hits both alike;
the figures are the median round.

The storefront page is what a mall front end shows a signed-in member: who they are,
tier, points, what the next tier needs, and a page of 20 gifts with the price in force
and whether the member can redeem each now (and why not).

    .venv/bin/python -m bench.storefront                     # 3 rounds of 6 s per path
    .venv/bin/python -m bench.storefront --rounds 1 --seconds 3
    .venv/bin/python -m bench.storefront --profile /tmp/prof  # py-spy the gateway (pip install py-spy)

Loopback only; every run is bounded by a request count and a time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from bench import loadgen
from bench import spy as bench_spy
from gateway.core.auth import Principal, Role, mint_token
from gateway.core.clock import SystemClock
from gateway.core.settings import Settings
from gateway.domain.calendar import Period as LimitPeriod
from gateway.domain.catalog import Limits
from gateway.domain.program import DEFAULT_PROGRAM
from gateway.features.catalog import GiftSpec
from gateway.features.members import Registration, new_member_document
from gateway.features.redemptions import RedeemRequest
from gateway.ledger import EntryKind, LedgerTx, Memo, Source
from gateway.runtime import prepare
from gateway.services import Services
from gateway.store.embedded_mongod import EmbeddedMongo, free_port
from gateway.store.mongo import Database, create_client

SECRET = "bench-secret-that-is-long-enough-for-hs256"
DATABASE = "bench_storefront"
MEMBER = "bench-member"
HOST = "127.0.0.1"

STOREFRONT = (
    "query Storefront($memberId: String!) { "
    "me { id displayName tier { code name } points { available pending } nextTier { tier { code name } remaining } } "
    "gifts(first: 20, memberId: $memberId) { "
    "edges { cursor node { id name category imageUrl price { points cash onOffer } status "
    "eligibility { canRedeem reason } } } pageInfo { hasNextPage endCursor } } }"
)
TIERS = "{ tiers { code } }"


async def seed(uri: str) -> None:
    """A VIP member with points and some orders; 60 gifts across tiers, prices, limits and offers."""
    client = create_client(uri)
    db = Database(client, DATABASE)
    settings = Settings(mongodb_uri=uri, jwt_secret=SECRET, database=DATABASE)  # type: ignore[arg-type]
    services = Services(settings=settings, db=db, clock=SystemClock(), jwt_secret=SECRET)
    try:
        await client.drop_database(DATABASE)
        await prepare(db)
        now = services.clock.now()
        doc = new_member_document(Registration(display_name="Bench Member", member_id=MEMBER), DEFAULT_PROGRAM, now)
        doc.update(tier="VIP", lifetimeSpend=250_000)
        await services.members.insert(doc)

        async def grant(tx: LedgerTx) -> dict[str, str]:
            await tx.earn(MEMBER, 12_000, Memo(EntryKind.GRANT, "bench", Source("BENCH", "seed")))
            return {}

        await services.ledger.transact(grant)
        tiers = ["SENIOR", "VIP", "SUPREME_VIP"]
        periods = [None, LimitPeriod.DAY, LimitPeriod.WEEK, LimitPeriod.MONTH]
        limited: list[tuple[str, int]] = []
        for i in range(60):
            period = periods[i % 4]
            spec = GiftSpec(
                name=f"Gift {i:02d}",
                category=["kitchen", "travel", "tea"][i % 3],
                cost_price=1_000 + 150 * i,
                points=400 + 170 * i,
                cash=100 * (i % 2),
                image_url=f"https://img.example/gift-{i}.png" if i % 5 else None,
                min_tier=tiers[i % 3],
                limits=Limits(per_member=1 + i % 2, period=period) if period else Limits(),
            )
            gift = await services.catalog.create(spec, 1_000, DEFAULT_PROGRAM)
            if i % 6 == 0:
                await services.catalog.set_offer(
                    gift["_id"], 300 + i, now - timedelta(days=1), now + timedelta(days=30)
                )
            if period is not None and i < 20 and spec.min_tier != "SUPREME_VIP":
                limited.append((gift["_id"], spec.cash))
        admin = Principal(Role.ADMIN, "bench")
        for n, (gift_id, cash) in enumerate(limited[:4]):
            await services.redemptions.redeem(admin, RedeemRequest(MEMBER, gift_id, 1, f"seed-{n}", cash_paid=cash))
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def server(argv: list[str], env: dict[str, str], port: int, log: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = await loadgen.fetch(HOST, port, f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
                if status in (200, 404):
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not come up; see {log}")
            await asyncio.sleep(0.2)
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def requests_for(port: int, token: str) -> dict[str, bytes]:
    storefront = orjson.dumps({"query": STOREFRONT, "variables": {"memberId": MEMBER}})
    tiers = orjson.dumps({"query": TIERS})
    return {
        "storefront": loadgen.post_request(HOST, port, "/graphql", storefront, {"Authorization": f"Bearer {token}"}),
        "tiers": loadgen.post_request(HOST, port, "/graphql", tiers),
    }


async def main(rounds: int, seconds: float, connections: int, profile: str, profile_page: str = "storefront") -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mongo = EmbeddedMongo(work / "mongo")
        uri = await mongo.start()
        try:
            await seed(uri)
            token = mint_token(SECRET, role=Role.MEMBER, subject=MEMBER, now=datetime.now(UTC), ttl=timedelta(hours=2))
            gw_port, bare_port = free_port(), free_port()
            gateway_env = {
                "LOYALTY_MONGODB_URI": uri,
                "LOYALTY_DATABASE": DATABASE,
                "LOYALTY_JWT_SECRET": SECRET,
                "LOYALTY_ENVIRONMENT": "production",
                "LOYALTY_PORT": str(gw_port),
                "LOYALTY_DATA_DIR": str(work),
                # One member and one address send all the load: the limiter still counts every
                # request (its cost is measured), but its per-window budgets must not refuse them.
                "LOYALTY_RATE_LIMIT_MEMBER": "1000000000",
                "LOYALTY_RATE_LIMIT_ANONYMOUS": "1000000000",
                "LOYALTY_COUPON_CODE_KEY": "bench-coupon-key-that-is-long-enough-0123456789",
            }
            bare_env = {"BENCH_MONGODB_URI": uri, "BENCH_DATABASE": DATABASE, "BENCH_JWT_SECRET": SECRET}
            gateway_argv = [sys.executable, "-m", "gateway.cli", "serve"]
            bare_argv = [
                sys.executable, "-m", "uvicorn", "bench.storefront_bare:app",
                "--port", str(bare_port), "--log-level", "warning", "--no-access-log",
            ]  # fmt: skip
            async with (
                server(gateway_argv, gateway_env, gw_port, work / "gateway.log") as gateway_process,
                server(bare_argv, bare_env, bare_port, work / "bare.log"),
            ):
                ports = {"gateway": gw_port, "bare": bare_port}
                reqs = {side: requests_for(port, token) for side, port in ports.items()}
                for page in ("storefront", "tiers"):
                    answers = {side: (await loadgen.fetch(HOST, ports[side], reqs[side][page]))[1] for side in ports}
                    if not same_answer(page, answers["gateway"], answers["bare"]):
                        return 1
                # Warm-up both (connections, plan cache, JIT-free but caches filled).
                for side, port in ports.items():
                    for page in ("storefront", "tiers"):
                        await loadgen.run(
                            HOST, port, reqs[side][page], connections=connections, requests=300, seconds=3
                        )
                results: dict[tuple[str, str], list[loadgen.Result]] = {}
                spy = None
                for r in range(rounds):
                    for page in ("storefront", "tiers"):
                        for side, port in ports.items():
                            if profile and r == 0 and side == "gateway" and page == profile_page:
                                Path(profile).mkdir(parents=True, exist_ok=True)
                                spy = bench_spy.start(
                                    f"{profile}/storefront.txt", pid=gateway_process.pid, seconds=seconds
                                )
                            result = await loadgen.run(
                                HOST, port, reqs[side][page], connections=connections, requests=100_000, seconds=seconds
                            )
                            if spy is not None:
                                spy.wait(60)
                                spy = None
                            if result.errors:
                                print(f"{side} {page}: {result.errors} non-200 answers")
                                return 1
                            results.setdefault((page, side), []).append(result)
            report(results, rounds, seconds, connections)
            if profile:
                bench_spy.summarize(
                    f"{profile}/storefront.txt", PROFILE_BUCKETS, title="the gateway under the storefront load", top=12
                )
        finally:
            mongo.stop()
    return 0


def same_answer(page: str, gateway: bytes, bare: bytes) -> bool:
    """Byte-identical passes; the same JSON spelled differently (escaped non-ASCII) passes with a note."""
    if gateway == bare:
        print(f"{page}: byte-identical answers ({len(gateway)} bytes)")
        return True
    if orjson.loads(gateway) == orjson.loads(bare):
        print(f"{page}: the same JSON, not byte-identical ({len(gateway)} vs {len(bare)} bytes: escaping differs)")
        return True
    at = next(i for i, (a, b) in enumerate(zip(gateway, bare, strict=False)) if a != b)
    around = slice(max(at - 80, 0), at + 80)
    print(f"{page}: the answers differ at byte {at}:\n gateway: {gateway[around]!r}\n bare:    {bare[around]!r}")
    return False


PROFILE_BUCKETS = {
    "GraphQL parse": ("graphql/language/parser", "graphql/language/lexer"),
    "GraphQL validation": ("graphql/validation/",),
    "GraphQL execution": ("graphql/execution/",),
    "PyMongo / BSON": ("pymongo/", "bson/"),
    "JSON encoding": ("json/encoder", "orjson"),
    "pydantic": ("pydantic/", "pydantic_core/"),
    # the request line goes through structlog straight to stderr (gateway/core/logs.py), not logging/
    "logging": ("logging/", "structlog/", "gateway/core/logs.py"),
    "JWT": ("jwt/",),
}


def median_result(results: list[loadgen.Result]) -> loadgen.Result:
    return sorted(results, key=lambda r: r.rate)[len(results) // 2]


def report(results: dict[tuple[str, str], list[loadgen.Result]], rounds: int, seconds: float, conns: int) -> None:
    print(f"\n{rounds} round(s) of {seconds:.0f} s per path, {conns} connections; median round shown")
    print(f"{'page':12} {'path':8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}   all rounds req/s")
    for page in ("storefront", "tiers"):
        for side in ("gateway", "bare"):
            runs = results[(page, side)]
            m = median_result(runs)
            every = ", ".join(f"{r.rate:.0f}" for r in runs)
            print(f"{page:12} {side:8} {m.rate:9.0f} {m.pct(50):8.1f} {m.pct(99):8.1f}   {every}")
        ratio = statistics.median(
            g.rate / b.rate for g, b in zip(results[(page, "gateway")], results[(page, "bare")], strict=True)
        )
        print(f"{page:12} {'ratio':8} {ratio:9.2f}   (gateway / hand-written, median of per-round ratios)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--profile", default="", help="directory for a py-spy flame graph of the gateway")
    parser.add_argument("--profile-page", default="storefront", choices=["storefront", "tiers"])
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    sys.exit(asyncio.run(main(args.rounds, args.seconds, args.connections, args.profile, args.profile_page)))
