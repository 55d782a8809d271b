"""Fan-out: N WebSocket subscribers on one gateway receiving one broadcast event.

Gateway path: a ledger entry is committed to MongoDB; the gateway's single change-stream
watcher publishes it to the hub; every ``pointsActivity`` subscription (graphql-transport-ws)
executes and sends it. Baseline: a bare Starlette WebSocket endpoint that sends the very
same text frame to every connection when asked over HTTP. Both servers run as separate
processes (uvicorn, one worker, production settings for the gateway); the subscribers are
bare asyncio protocols spread over ``--client-processes`` processes (bench/ws_clients.py), so
that at 5,000 the clients' own frame parsing is not what is measured. Latency is trigger →
arrival at the client (time.monotonic is system-wide); memory per subscriber is the server's
RSS growth divided by N. The open-files limit is raised to the hard limit.

    .venv/bin/python -m bench.fanout                # N = 1000 and 5000
    .venv/bin/python -m bench.fanout --counts 200   # quick
    .venv/bin/python -m bench.fanout --compare ../main   # main's gateway too, side by side
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId

from bench import spy as bench_spy
from bench.ws_clients import ClientPool, raise_open_files_limit
from gateway.core.auth import Role, mint_token
from gateway.store.embedded_mongod import EmbeddedMongo, free_port
from gateway.store.mongo import Database, create_client

SECRET = "bench-secret-that-is-long-enough-for-hs256"
QUERY = "subscription { pointsActivity { id kind points availableDelta pendingDelta sourceType createdAt } }"
ROUNDS = 5
PROFILE = ""  # --profile FILE: run the gateway under cProfile
SPY = ""  # --spy FILE: py-spy the gateway during the broadcast rounds only (pip install py-spy)
CLIENT_PROCESSES = 4
COMPARE: Path | None = None  # --compare DIR: also run the gateway of that checkout, in the same run

BASELINE_APP = """
import asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

clients: set[WebSocket] = set()

async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    clients.add(websocket)
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        clients.discard(websocket)

async def broadcast(request: Request) -> PlainTextResponse:
    payload = (await request.body()).decode()
    async def send(c: WebSocket) -> None:
        try:
            await c.send_text(payload)
        except Exception:
            pass
    # Each send as its own task, as a per-connection writer would do it.
    for c in list(clients):
        asyncio.ensure_future(send(c))
    return PlainTextResponse("ok")

app = Starlette(routes=[WebSocketRoute("/ws", ws), Route("/broadcast", broadcast, methods=["POST"])])
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def latencies(arrivals: list[list[float]], starts: list[float]) -> list[float]:
    """Milliseconds from each round's trigger to each arrival; round 0 (warm-up) excluded."""
    return [(a[r] - starts[r]) * 1000 for a in arrivals for r in range(1, len(starts))]


def ledger_doc(seq: int) -> dict[str, Any]:
    change = {"available": 10, "pending": 0, "lifetimeEarned": 10, "spent": 0, "expired": 0}
    return {
        "_id": ObjectId(),
        "memberId": "bench-member",
        "seq": seq,
        "kind": "GRANT",
        "points": 10,
        "delta": change,
        "reason": "bench",
        "source": {"type": "BENCH", "id": str(seq)},
        "lots": [],
        "balancesAfter": {k: v * seq for k, v in change.items()},
        "createdAt": datetime.now(UTC),
        "idempotencyKey": None,
    }


async def run_gateway(mongo_uri: str, n: int, workdir: Path, source: Path | None = None) -> dict[str, Any]:
    """``source``: run the gateway of another checkout (``--compare``) instead of this one."""
    port = free_port()
    database = f"bench_{os.getpid()}_{n}"
    env = {
        **os.environ,
        "LOYALTY_MONGODB_URI": mongo_uri,
        "LOYALTY_DATABASE": database,
        "LOYALTY_JWT_SECRET": SECRET,
        "LOYALTY_PORT": str(port),
        "LOYALTY_DATA_DIR": str(workdir),
        "LOYALTY_SUBSCRIBER_QUEUE_SIZE": "256",
        "LOYALTY_ENVIRONMENT": "production",
        "LOYALTY_COUPON_CODE_KEY": "bench-coupon-key-that-is-long-enough-0123456789",
        # one dashboard principal opens every subscription: its subscribe budget must not refuse them
        "LOYALTY_RATE_LIMIT_DASHBOARD": "1000000000",
    }
    profile = ["-m", "cProfile", "-o", PROFILE] if PROFILE else []
    if source is not None:
        env["PYTHONPATH"] = str(source)
    server = subprocess.Popen(
        [sys.executable, *profile, "-m", "gateway.cli", "serve"],
        env=env,
        cwd=source,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = create_client(mongo_uri)
    db = Database(client, database)
    clients = ClientPool(CLIENT_PROCESSES)
    try:
        await wait_http(f"http://127.0.0.1:{port}/readyz")
        rss_before = rss_kib(server.pid)
        token = mint_token(SECRET, role=Role.DASHBOARD, subject="bench", now=datetime.now(UTC), ttl=timedelta(hours=1))
        handshake = [
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}).encode(),
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": QUERY}}).encode(),
        ]
        await clients.open("127.0.0.1", port, "/graphql", n, handshake, "graphql-transport-ws")
        # Warm-up: events until every subscription has seen one (so all are registered), then
        # one more that every subscriber receives; its arrival is round 0.
        seq = 0
        while not all(await clients.counts()):
            seq += 1
            await db.ledger.insert_one(ledger_doc(seq))
            await asyncio.sleep(0.2)
        seen = await clients.settled()
        starts = [time.monotonic()]
        await db.ledger.insert_one(ledger_doc(seq + 1))
        await clients.wait_counts([c + 1 for c in seen])
        await clients.trim()
        spy = bench_spy.start(pid=server.pid, output=f"{SPY}.{'compared.' if source else ''}{n}") if SPY else None
        for r in range(1, ROUNDS + 1):
            starts.append(time.monotonic())
            await db.ledger.insert_one(ledger_doc(seq + 1 + r))
            await clients.wait_counts(r + 1)
        if spy is not None:
            bench_spy.stop(spy)
        rss_after = rss_kib(server.pid)
        arrivals, first = await clients.arrivals()
        return {
            "latency": latencies(arrivals, starts),
            "rss_per_sub_kib": (rss_after - rss_before) / n,
            "payload": first.decode() if first else None,
        }
    finally:
        await clients.close()
        server.send_signal(signal.SIGINT)  # graceful: subscribers get 1001, a profile is written
        server.wait(30)
        await client.drop_database(database)
        await client.close()


async def run_baseline(n: int, payload: str, workdir: Path) -> dict[str, Any]:
    port = free_port()
    module = workdir / "bare_broadcast.py"
    module.write_text(BASELINE_APP)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bare_broadcast:app", "--port", str(port), "--log-level", "warning"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    clients = ClientPool(CLIENT_PROCESSES)
    try:
        await wait_http(f"http://127.0.0.1:{port}/missing")
        rss_before = rss_kib(server.pid)
        await clients.open("127.0.0.1", port, "/ws", n, [])
        starts: list[float] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for r in range(ROUNDS + 1):
                starts.append(time.monotonic())
                await http.post("/broadcast", content=payload)
                await clients.wait_counts(r + 1)
        rss_after = rss_kib(server.pid)
        arrivals, _ = await clients.arrivals()
        return {"latency": latencies(arrivals, starts), "rss_per_sub_kib": (rss_after - rss_before) / n}
    finally:
        await clients.close()
        server.terminate()
        server.wait(30)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def main(counts: list[int]) -> None:
    print(f"open-files limit {raise_open_files_limit()}, {CLIENT_PROCESSES} client processes")
    with tempfile.TemporaryDirectory() as tmp:
        mongo = EmbeddedMongo(Path(tmp) / "mongo")
        uri = await mongo.start()
        try:
            print(f"fan-out, {ROUNDS} broadcast events per N (after a warm-up); ratio = gateway / bare Starlette")
            header = f"{'N':>6} {'':10} {'p50 ms':>9} {'p99 ms':>9} {'KiB/sub':>9}"
            print(header)
            for n in counts:
                before = await run_gateway(uri, n, Path(tmp), COMPARE) if COMPARE else None
                gateway = await run_gateway(uri, n, Path(tmp))
                bare = await run_baseline(n, gateway["payload"] or "{}", Path(tmp))
                rows = [("gateway", gateway), ("bare", bare)]
                if before is not None:
                    rows.insert(0, ("compared", before))
                    if len(before["payload"] or "") != len(gateway["payload"] or ""):
                        print(f"{n:>6} the compared checkout sent another payload: {before['payload']}")
                for name, result in rows:
                    lat = result["latency"]
                    print(f"{n:>6} {name:10} {pct(lat, 50):9.1f} {pct(lat, 99):9.1f} {result['rss_per_sub_kib']:9.1f}")
                g, b = gateway, bare
                print(
                    f"{n:>6} {'ratio':10} {pct(g['latency'], 50) / pct(b['latency'], 50):9.2f}"
                    f" {pct(g['latency'], 99) / pct(b['latency'], 99):9.2f}"
                    f" {g['rss_per_sub_kib'] / max(b['rss_per_sub_kib'], 0.1):9.2f}"
                )
                if before is not None:
                    c = before
                    print(
                        f"{n:>6} {'cmp ratio':10} {pct(c['latency'], 50) / pct(b['latency'], 50):9.2f}"
                        f" {pct(c['latency'], 99) / pct(b['latency'], 99):9.2f}"
                        f" {c['rss_per_sub_kib'] / max(b['rss_per_sub_kib'], 0.1):9.2f}"
                    )
                print(
                    f"{n:>6} {'(mean ms)':10} gateway {statistics.mean(g['latency']):.1f}, bare "
                    f"{statistics.mean(b['latency']):.1f}; payload {len(gateway['payload'] or '')} bytes"
                )
        finally:
            mongo.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--profile", default="", help="write a cProfile of the gateway process here")
    parser.add_argument("--spy", default="", help="py-spy (raw) of the gateway's broadcast rounds to FILE.<N>")
    parser.add_argument("--client-processes", type=int, default=CLIENT_PROCESSES)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="broadcast events per N (after the warm-up)")
    parser.add_argument(
        "--compare", default="", help="also run the gateway of this checkout (e.g. /work/main) first, as 'compared'"
    )
    args = parser.parse_args()
    COMPARE = Path(args.compare).resolve() if args.compare else None
    PROFILE = args.profile
    SPY = args.spy
    CLIENT_PROCESSES = args.client_processes
    ROUNDS = args.rounds
    asyncio.run(main(args.counts))
