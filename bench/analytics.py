"""The operator dashboard at scale: 1,000,000 ledger entries over 24 months, 100,000 members.

Times the whole dashboard — one GraphQL request with every analytics query (pointsAnalytics
with breakage, memberAnalytics with tiers, months and RFM, topGifts, partnerAnalytics) over the
last 12 months, through the ASGI app as a browser sends it — and, side by side, the page's own
query and a bare baseline: one ``$group`` of the whole ledger by month, which is what the
numbers would cost without rollups.

- ``cold``: the first load on a fresh database: it seals 24 months of rollups (``$merge``),
  traces lots into issue-month cohorts (``$lookup``) and computes RFM quintiles.
- ``after midnight``: the first load of a new day, which seals one more day.
- ``warm``: every later load (p50/p99 over ``--loads``).

Rollups are built from sealed days on demand, never on the write path, so ledger writes pay
nothing for them (there is no write-rate comparison to make). The data is inserted in bulk in
the shapes the ledger writes (entries with deltas and lot takes, lots, purchases, members).

Run: ``.venv/bin/python -m bench.analytics [--entries 1000000] [--members 100000] [--loads 30]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId

from gateway.core.auth import Role, mint_token
from gateway.core.clock import FrozenClock
from gateway.core.settings import Settings
from gateway.runtime import prepare
from gateway.services import Services
from gateway.store.embedded_mongod import EmbeddedMongo
from gateway.store.mongo import Database, create_client
from gateway.web.app import create_app

SECRET = "bench-secret-that-is-long-enough-for-hs256"
NOW = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
START = NOW - timedelta(days=730)
TIERS = [("MEMBER", 70), ("SENIOR", 20), ("VIP", 8), ("SUPREME_VIP", 2)]
PARTNERS = [f"partner-{i}" for i in range(5)]
GIFTS = [f"gift-{i:02d}" for i in range(50)]
# kind: (weight, sign) — sign +1 earns a lot, -1 spends from lots, 0 settles
KINDS: dict[str, tuple[int, int]] = {
    "PURCHASE": (33, 1),
    "CHECK_IN": (18, 1),
    "BEHAVIOUR": (5, 1),
    "REFERRAL": (1, 1),
    "GRANT": (3, 1),
    "PARTNER_ACCRUE": (5, 1),
    "PARTNER_CONVERT_IN": (1, 1),
    "REDEMPTION": (8, -1),
    "REDEMPTION_CANCEL": (1, -2),
    "DEDUCTION": (6, -1),
    "DEDUCTION_RETURN": (1, -2),
    "PARTNER_BURN": (3, -1),
    "PARTNER_CONVERT_OUT": (1, -1),
    "PARTNER_REVERSE": (1, -3),
    "REFUND": (2, -3),
    "EXPIRE": (6, -4),
    "RELEASE": (5, 0),
}

DASHBOARD = """query($from: Date!, $to: Date!) {
  pointsAnalytics(from: $from, to: $to) {
    months { month issued redeemed expired reversed issuedGrowth redeemedGrowth expiredGrowth liabilityPoints }
    totals { issued redeemed expired reversed }
    liability { availablePoints pendingPoints costPerPointFen amountFen }
    health { redemptionRate advice } cost { expectedFen actualFen }
    issuedBySource { source points } redeemedByChannel { channel points }
    breakage { rate cohorts { month issued expired redeemed } }
  }
  memberAnalytics(from: $from, to: $to) {
    byTier { tier { code name } members } months { month newMembers activeMembers } rfm { segment members }
  }
  topGifts(from: $from, to: $to, first: 10) { gift { id name } redemptions points }
  partnerAnalytics(from: $from, to: $to) { partner { id name } accrued burned converted netPoints netFen }
}"""
PAGE = """query($from: Date!, $to: Date!) {
  pointsAnalytics(from: $from, to: $to) {
    months { month issued redeemed expired issuedGrowth redeemedGrowth expiredGrowth }
    liability { points amountFen } health { redemptionRate advice }
  }
  memberAnalytics(from: $to, to: $to) { byTier { tier { code name } members } }
  topGifts(from: $from, to: $to, first: 8) { gift { id name } redemptions points }
  partnerAnalytics(from: $from, to: $to) { partner { id name } accrued burned netFen }
}"""
RANGE = {"from": "2025-12-01", "to": "2026-11-29"}


def _delta(**values: int) -> dict[str, int]:
    return {k: values.get(k, 0) for k in ("available", "pending", "lifetimeEarned", "spent", "expired")}


async def load(db: Database, entries: int, members: int, seed: int = 7) -> None:
    """Bulk-insert members, gifts, partners, and ``entries`` ledger entries with their lots
    and purchases, spread over 24 months (newest data densest, like a growing program)."""
    rng = random.Random(seed)
    span = (NOW - START).total_seconds()
    registered = sorted(START + timedelta(seconds=span * rng.random() ** 0.8) for _ in range(members))
    weights = [w for _, w in TIERS]
    member_docs = [
        {
            "_id": f"m{i:06d}",
            "displayName": f"m{i}",
            "registeredAt": at,
            "tier": rng.choices([c for c, _ in TIERS], weights)[0],
            "balances": _delta(),
            "ledgerSeq": 0,
        }
        for i, at in enumerate(registered)
    ]
    await db.members.insert_many(member_docs, ordered=False)
    await db["gifts"].insert_many(
        [
            {
                "_id": g,
                "name": f"Gift {g}",
                "costPrice": 1000 * (i + 1),
                "cash": 0,
                "points": 500 * (i + 1),
                "listed": True,
                "stock": 100,
                "createdAt": START,
            }  # fmt: skip
            for i, g in enumerate(GIFTS)
        ]
    )
    await db["partners"].insert_many(
        [{"_id": p, "name": p.title(), "settlementMilliFenPerPoint": 800} for p in PARTNERS]
    )
    kinds = list(KINDS)
    kind_weights = [KINDS[k][0] for k in kinds]
    times = sorted(START + timedelta(seconds=span * rng.random() ** 0.7) for _ in range(entries))
    seqs: dict[str, int] = {}
    lots_of: dict[str, list[tuple[ObjectId, datetime]]] = {}
    batch: list[dict[str, Any]] = []
    lots: list[dict[str, Any]] = []
    purchases: list[dict[str, Any]] = []
    for at in times:
        member = member_docs[min(int(members * rng.random() ** 0.5), members - 1)]["_id"]
        kind = rng.choices(kinds, kind_weights)[0]
        sign = KINDS[kind][1]
        held = lots_of.get(member)
        if sign < 0 and not held:
            kind, sign = "CHECK_IN", 1
        points = rng.randint(5, 500)
        source: dict[str, Any] = {"type": "BENCH", "id": "b"}
        entry: dict[str, Any] = {"_id": ObjectId(), "memberId": member, "kind": kind, "createdAt": at, "lots": []}
        if kind.startswith("PARTNER"):
            source = {"type": "PARTNER", "id": f"e{len(batch)}", "partnerId": rng.choice(PARTNERS)}
        if kind in ("REDEMPTION", "REDEMPTION_CANCEL"):
            entry["giftId"] = rng.choice(GIFTS)
        if sign == 1:
            lot_id = ObjectId()
            lots_of.setdefault(member, []).append((lot_id, at))
            pending = kind == "PURCHASE"
            entry["delta"] = (
                _delta(pending=points, lifetimeEarned=points)
                if pending
                else _delta(available=points, lifetimeEarned=points)
            )
            entry["lots"] = [{"lotId": lot_id, "points": points}]
            lots.append(
                {
                    "_id": lot_id,
                    "memberId": member,
                    "points": points,
                    "remaining": points // 3,
                    "createdAt": at,
                    "expiresAt": at + timedelta(days=365),
                    "state": "AVAILABLE",
                    "source": source,
                }  # fmt: skip
            )
            if kind == "PURCHASE":
                purchases.append(
                    {
                        "memberId": member,
                        "orderId": f"o{len(purchases)}",
                        "amount": points * 100,
                        "refunded": 0,
                        "paidAt": at,
                    }  # fmt: skip
                )
        elif sign == 0:
            entry["delta"] = _delta(pending=-points, available=points)
        else:
            assert held is not None
            lot_id, _ = rng.choice(held)
            entry["lots"] = [{"lotId": lot_id, "points": points}]
            if sign == -1:
                entry["delta"] = _delta(available=-points, spent=points)
            elif sign == -2:
                entry["delta"] = _delta(available=points, spent=-points)
            elif sign == -3:
                entry["delta"] = _delta(available=-points, lifetimeEarned=-points)
                if kind == "PARTNER_REVERSE":
                    entry["reversesKind"] = "PARTNER_ACCRUE"
            else:
                entry["delta"] = _delta(available=-points, expired=points)
        seqs[member] = seqs.get(member, 0) + 1
        entry.update(seq=seqs[member], source=source, points=entry["delta"]["available"] + entry["delta"]["pending"])
        batch.append(entry)
        if len(batch) >= 20_000:
            await db.ledger.insert_many(batch, ordered=False)
            batch = []
        if len(lots) >= 20_000:
            await db.lots.insert_many(lots, ordered=False)
            lots = []
    for name, docs in (("ledger", batch), ("lots", lots), ("purchases", purchases)):
        for i in range(0, len(docs), 20_000):
            await db[name].insert_many(docs[i : i + 20_000], ordered=False)


async def timed(client: httpx.AsyncClient, query: str, auth: dict[str, str]) -> float:
    started = time.perf_counter()
    response = await client.post("/graphql", json={"query": query, "variables": RANGE}, headers=auth)
    elapsed = (time.perf_counter() - started) * 1000
    body = response.json()
    assert "errors" not in body, body["errors"]
    return elapsed


async def bare(db: Database) -> float:
    """The baseline: one $group of the whole ledger by local month, no rollups."""
    started = time.perf_counter()
    pipeline = [
        {
            "$group": {
                "_id": {
                    "m": {"$dateToString": {"format": "%Y-%m", "date": "$createdAt", "timezone": "Asia/Shanghai"}},
                    "k": "$kind",
                },
                "earned": {"$sum": "$delta.lifetimeEarned"},
                "spent": {"$sum": "$delta.spent"},
                "expired": {"$sum": "$delta.expired"},
            }
        }
    ]
    await (await db.ledger.aggregate(pipeline)).to_list()
    return (time.perf_counter() - started) * 1000


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main(entries: int, members: int, loads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mongo = EmbeddedMongo(Path(tmp) / "mongo")
        uri = await mongo.start()
        client = create_client(uri)
        try:
            settings = Settings(mongodb_uri=uri, jwt_secret=SECRET, data_dir=Path(tmp))  # type: ignore[arg-type]
            db = Database(client, "bench_analytics")
            clock = FrozenClock(NOW)
            services = Services(settings=settings, db=db, clock=clock, jwt_secret=SECRET)
            await prepare(db)
            started = time.perf_counter()
            await load(db, entries, members)
            count = await db.ledger.estimated_document_count()
            print(f"loaded {count:,} ledger entries, {members:,} members in {time.perf_counter() - started:.0f} s")
            app = create_app(settings, services=services, run_workers=False)
            jwt = mint_token(SECRET, role=Role.DASHBOARD, subject="bench", now=NOW, ttl=timedelta(days=1))
            auth = {"Authorization": f"Bearer {jwt}"}
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as http:
                    cold = await timed(http, DASHBOARD, auth)
                    clock.advance(timedelta(days=1))
                    midnight = await timed(http, DASHBOARD, auth)
                    warm = [await timed(http, DASHBOARD, auth) for _ in range(loads)]
                    page = [await timed(http, PAGE, auth) for _ in range(loads)]
                    baseline = [await bare(db) for _ in range(max(3, loads // 5))]
            rollups = await db["analytics_daily"].estimated_document_count()
            cohorts = await db["analytics_cohorts"].estimated_document_count()
            print(f"rollup documents: {rollups:,} daily, {cohorts:,} cohort")
            print(f"cold dashboard (seals 24 months, cohorts, RFM): {cold:,.0f} ms")
            print(f"first load after midnight (seals one day):       {midnight:,.0f} ms")
            print(f"whole dashboard, warm: p50 {statistics.median(warm):,.0f} ms  p99 {percentile(warm, 99):,.0f} ms")
            print(f"page query, warm:      p50 {statistics.median(page):,.0f} ms  p99 {percentile(page, 99):,.0f} ms")
            base = statistics.median(baseline)
            print(f"bare \\$group of the ledger by month (no rollups): p50 {base:,.0f} ms")
            print(f"ratio whole dashboard / bare group: {statistics.median(warm) / base:.2f}")
        finally:
            await client.close()
            mongo.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.entries, args.members, args.loads))
