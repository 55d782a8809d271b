"""Two gateway replicas on one MongoDB replica set, against one replica on the same set.

What the compose stack does with containers, done here with processes: one ``mongod`` (a one-node
replica set, the embedded default), and ``loyalty-gateway serve`` started once or twice on it
(separate processes, production settings, JSON logs, all workers running). The same fixed
workload (70 % member reads, 30 % grants to distinct members) runs against one replica, then split
round-robin over two, at the same client concurrency; reported side by side, with each replica's
resident memory idle and after the load, and the memory one open subscription costs.

    .venv/bin/python -m bench.two_replicas                 # 3000 operations, concurrency 32
    .venv/bin/python -m bench.two_replicas --ops 600       # quick

The machine this was measured on has 2 cores shared with other work, so the ratio says how the
gateway behaves when replicas compete for the same cores and the same mongod, not how it scales
on separate hosts.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from gateway.core.auth import Role, mint_token
from gateway.features.audit import audit_all
from gateway.store.embedded_mongod import EmbeddedMongo, free_port
from gateway.store.mongo import Database, create_client

SECRET = "bench-secret-that-is-long-enough-for-hs256"
MEMBERS = 200
READ = "query Member($id: ID!) { member(id: $id) { id tier { code } points { available pending } } }"
GRANT = "mutation Grant($input: GrantPointsInput!) { grantPoints(input: $input) { points } }"
SUBSCRIBE = "subscription { pointsActivity { id kind points } }"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Replica:
    def __init__(self, uri: str, database: str, data_dir: Path) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
        env.update(
            {
                "LOYALTY_MONGODB_URI": uri,
                "LOYALTY_DATABASE": database,
                "LOYALTY_JWT_SECRET": SECRET,
                "LOYALTY_ENVIRONMENT": "production",
                "LOYALTY_DATA_DIR": str(data_dir),
                "LOYALTY_PORT": str(self.port),
            }
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    async def ready(self, client: httpx.AsyncClient) -> None:
        for _ in range(900):
            if self.process.poll() is not None:
                raise RuntimeError("a gateway replica exited during start")
            try:
                if (await client.get(f"{self.url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("a gateway replica never became ready")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def workload(
    client: httpx.AsyncClient, urls: list[str], ops: int, concurrency: int, admin: str
) -> dict[str, Any]:
    targets = itertools.cycle(urls)
    plan = [("grant" if i % 10 < 3 else "read", next(targets), i) for i in range(ops)]
    queue: asyncio.Queue[tuple[str, str, int]] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)
    latencies: dict[str, list[float]] = {"read": [], "grant": []}
    errors = 0
    headers = {"Authorization": f"Bearer {admin}"}
    run = uuid.uuid4().hex[:8]

    async def worker() -> None:
        nonlocal errors
        while not queue.empty():
            kind, url, i = queue.get_nowait()
            member = f"bench-{i % MEMBERS:04d}"
            if kind == "read":
                body = {"query": READ, "variables": {"id": member}, "operationName": "Member"}
            else:
                grant = {"memberId": member, "points": 1, "reason": "bench", "idempotencyKey": f"{run}-{i}"}
                body = {"query": GRANT, "variables": {"input": grant}, "operationName": "Grant"}
            started = time.perf_counter()
            response = await client.post(f"{url}/graphql", json=body, headers=headers)
            latencies[kind].append(time.perf_counter() - started)
            if response.status_code != 200 or "errors" in response.json():
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started

    def pct(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else float("nan")

    every = latencies["read"] + latencies["grant"]
    return {
        "ops": ops,
        "seconds": elapsed,
        "throughput": ops / elapsed,
        "p50_ms": pct(every, 50),
        "p95_ms": pct(every, 95),
        "read_p95_ms": pct(latencies["read"], 95),
        "grant_p95_ms": pct(latencies["grant"], 95),
        "errors": errors,
    }


async def subscription_cost(replica: Replica, count: int) -> float:
    """RSS growth per open pointsActivity subscription (dashboard token), in KiB."""
    dashboard = mint_token(SECRET, role=Role.DASHBOARD, subject="bench", now=datetime.now(UTC), ttl=timedelta(hours=1))
    before = rss_mib(replica.process.pid)
    sockets = []
    for n in range(count):
        ws = await connect(replica.url.replace("http", "ws") + "/graphql", subprotocols=["graphql-transport-ws"])
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {dashboard}"}}))
        await ws.recv()
        await ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
        sockets.append(ws)
    await asyncio.sleep(1.0)
    after = rss_mib(replica.process.pid)
    for ws in sockets:
        await ws.close()
    return (after - before) * 1024 / count


async def main(ops: int, concurrency: int, subscriptions: int) -> None:
    admin = mint_token(SECRET, role=Role.ADMIN, subject="bench", now=datetime.now(UTC), ttl=timedelta(hours=2))
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        mongo = EmbeddedMongo(Path(tmp) / "mongo")
        uri = await mongo.start()
        replicas: list[Replica] = []
        try:
            replicas = [Replica(uri, "bench", Path(tmp) / f"gw{n}") for n in range(2)]
            limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
            async with httpx.AsyncClient(timeout=60, limits=limits) as client:
                for replica in replicas:
                    await replica.ready(client)
                idle = [rss_mib(r.process.pid) for r in replicas]
                for i in range(MEMBERS):
                    body = {
                        "query": "mutation R($input: RegisterMemberInput!) { registerMember(input: $input) { id } }",
                        "variables": {"input": {"id": f"bench-{i:04d}", "displayName": f"Bench {i}"}},
                    }
                    await client.post(
                        f"{replicas[i % 2].url}/graphql", json=body, headers={"Authorization": f"Bearer {admin}"}
                    )
            # A fresh client per phase: keep-alive connections idle for a whole phase are closed by
            # uvicorn, and a reused dead one would count as an error of the next phase.
            phases: list[dict[str, Any]] = []
            both = [r.url for r in replicas]
            for urls, count in ((both, min(ops, 300)), ([replicas[0].url], ops), (both, ops)):  # warm-up, one, two
                async with httpx.AsyncClient(timeout=60, limits=limits) as phase_client:
                    phases.append(await workload(phase_client, urls, count, concurrency, admin))
            _, one, two = phases
            loaded = [rss_mib(r.process.pid) for r in replicas]
            per_sub = await subscription_cost(replicas[1], subscriptions) if subscriptions else float("nan")
            grants_sent = sum(sum(1 for i in range(p["ops"]) if i % 10 < 3) for p in phases)
            client = create_client(uri)
            try:
                db = Database(client, "bench")
                grants_booked = await db.ledger.count_documents({"kind": "GRANT"})
                mismatches = await audit_all(db)
            finally:
                await client.close()
        finally:
            for replica in replicas:
                replica.stop()
            mongo.stop()
    print(f"workload: {ops} operations (70% member reads, 30% grants), {concurrency} concurrent clients")
    print(f"{'':<14}{'ops/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'read p95':>10}{'grant p95':>11}{'errors':>8}")
    for name, result in (("one replica", one), ("two replicas", two)):
        print(
            f"{name:<14}{result['throughput']:>9.0f}{result['p50_ms']:>9.1f}{result['p95_ms']:>9.1f}"
            f"{result['read_p95_ms']:>10.1f}{result['grant_p95_ms']:>11.1f}{result['errors']:>8}"
        )
    print(f"throughput ratio two/one: {two['throughput'] / one['throughput']:.2f}")
    idle_text, loaded_text = (", ".join(f"{m:.0f} MiB" for m in values) for values in (idle, loaded))
    print(f"replica RSS idle: {idle_text}; after load: {loaded_text}")
    print(f"grants sent {grants_sent}, ledger GRANT entries {grants_booked}, audit mismatches {len(mismatches)}")
    if subscriptions:
        print(f"memory per open subscription ({subscriptions} open): {per_sub:.1f} KiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--subscriptions", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.ops, args.concurrency, args.subscriptions))
