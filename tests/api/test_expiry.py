"""Expiry: oldest lots first, the job expires each lot once, and members see what is about to expire."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from gateway.core.clock import as_utc
from gateway.features.audit import audit_all
from gateway.features.expiry import expire_points, members_with_due_lots
from tests.conftest import JWT_SECRET
from tests.support.ledger_helpers import spend
from tests.support.points_helpers import UPDATE_PROGRAM, grant, member, purchase, register


async def test_spending_consumes_the_oldest_lots_and_expiry_takes_the_rest(gql, admin, db, services, clock):
    await purchase(gql, admin, "m", "o-1", 10_000)  # 100 points, earned day 0
    clock.advance(timedelta(days=100))
    await purchase(gql, admin, "m", "o-2", 20_000)  # 200 points, earned day 100
    clock.advance(timedelta(days=10))
    await spend(services.ledger, "m", 150)  # 100 from the first lot, 50 from the second
    lots = {lot["source"]["id"]: lot["remaining"] async for lot in db.lots.find({"memberId": "m"})}
    assert lots == {"o-1": 0, "o-2": 150}
    clock.advance(timedelta(days=250))  # day 360: nothing due yet
    assert (await expire_points(db, services.ledger)).members == 0
    clock.advance(timedelta(days=100))  # day 460: the second lot (expires day 465)? not yet
    assert (await expire_points(db, services.ledger)).expired_points == 0
    clock.advance(timedelta(days=6))
    report = await expire_points(db, services.ledger)
    assert (report.members, report.expired_points, report.expired_lots) == (1, 150, 1)
    seen = await member(gql, admin, "m")
    assert seen["points"] == {"available": 0, "pending": 0, "lifetimeEarned": 300, "spent": 150, "expired": 150}
    assert await audit_all(db) == []


async def test_two_expiry_runs_at_once_expire_each_lot_once(gql, admin, db, services, clock):
    for i in range(8):
        await register(gql, admin, f"m{i}")
        await grant(gql, admin, f"m{i}", 10 + i, f"g{i}")
    await spend(services.ledger, "m3", 5)
    clock.advance(timedelta(days=366))
    assert len(await members_with_due_lots(db, clock.now())) == 8
    reports = await asyncio.gather(expire_points(db, services.ledger), expire_points(db, services.ledger))
    total = sum(range(10, 18)) - 5
    assert sum(r.expired_points for r in reports) == total
    assert await db.ledger.count_documents({"kind": "EXPIRE"}) == 8
    assert (await expire_points(db, services.ledger)).members == 0
    assert await audit_all(db) == []


async def test_the_job_releases_closed_return_windows(gql, admin, db, services, clock):
    await purchase(gql, admin, "m", "o-1", 10_000)
    clock.advance(timedelta(days=7))
    report = await expire_points(db, services.ledger)
    assert (report.released_points, report.released_lots) == (100, 1)
    assert (await member(gql, admin, "m"))["points"]["available"] == 100


async def test_member_sees_points_expiring_in_the_next_30_days(gql, admin, db, clock):
    await register(gql, admin, "m")
    await grant(gql, admin, "m", 40, "g1")
    clock.advance(timedelta(days=20))
    await grant(gql, admin, "m", 60, "g2")
    clock.advance(timedelta(days=340))  # the first lot expires in 5 days, the second in 25
    seen = (await member(gql, admin, "m"))["expiringPoints"]
    assert seen["total"] == 100 and [lot["points"] for lot in seen["lots"]] == [40, 60]
    first = datetime.fromisoformat(seen["lots"][0]["expiresAt"])
    assert first == clock.now() + timedelta(days=5)
    narrow = await gql.ok(
        'query { member(id: "m") { expiringPoints(days: 10) { total lots { points } } } }', token=admin
    )
    assert narrow["member"]["expiringPoints"]["total"] == 40
    code = await gql.error_code('query { member(id: "m") { expiringPoints(days: 0) { total } } }', token=admin)
    assert code == "BAD_USER_INPUT"


def run_cli(db, mongo_uri, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env.update(LOYALTY_MONGODB_URI=mongo_uri, LOYALTY_DATABASE=db.db.name, LOYALTY_JWT_SECRET=JWT_SECRET)
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, env=env, timeout=60
    )


async def test_cli_expire_points_and_audit(gql, admin, db, mongo_uri):
    past = datetime(2024, 1, 1)
    await register(gql, admin, "m")
    await grant(gql, admin, "m", 50, "g1")
    await db.lots.update_many({}, {"$set": {"expiresAt": past}})
    result = await asyncio.to_thread(run_cli, db, mongo_uri, "expire-points")
    assert result.returncode == 0, result.stderr
    assert "expired 50 points in 1 lots" in result.stdout
    clean = await asyncio.to_thread(run_cli, db, mongo_uri, "audit")
    assert clean.returncode == 0 and "audit clean" in clean.stdout
    await db.members.update_one({"_id": "m"}, {"$inc": {"balances.available": 7}})
    broken = await asyncio.to_thread(run_cli, db, mongo_uri, "audit")
    assert broken.returncode == 1 and "MISMATCH m: available is 7" in broken.stdout


async def test_the_scheduled_worker_runs_the_job(gql, admin, db, services, clock):
    from gateway.workers.expiry import expiry_worker
    from gateway.workers.supervisor import workers_for

    assert "points-expiry" in dict(workers_for(services))
    await register(gql, admin, "m")
    await grant(gql, admin, "m", 30, "g1")
    clock.advance(timedelta(days=366))
    task = asyncio.create_task(expiry_worker(services))
    try:
        for _ in range(200):
            if await db.ledger.count_documents({"kind": "EXPIRE"}):
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
    assert (await member(gql, admin, "m"))["points"]["expired"] == 30


EXPIRING = "query($id: ID!) { member(id: $id) { expiringPoints(days: 400) { total lots { points expiresAt } } } }"


async def test_annual_clearing_run_end_to_end(gql, admin, db, services, clock):
    """清零: every lot earned in 2026 clears at the end of 31 Dec 2027 (Asia/Shanghai), all members
    at the same instant, in bounded batches; lots earned in 2027 live on until the end of 2028."""
    program = {"expiry": {"mode": "ANNUAL_CLEARING", "clearingMonth": 12, "clearingDay": 31}}
    await gql.ok(UPDATE_PROGRAM, {"input": program}, token=admin)
    members = [f"m{i:02}" for i in range(30)]
    for i, member_id in enumerate(members):
        await register(gql, admin, member_id)
        await grant(gql, admin, member_id, 100 + i, f"g-{member_id}")
    await spend(services.ledger, "m00", 40)
    clock.set(datetime(2027, 6, 1, tzinfo=UTC))
    await grant(gql, admin, "m01", 500, "g-2027")
    clearing = datetime(2027, 12, 31, 16, 0, tzinfo=UTC)  # 2028-01-01 00:00 in Asia/Shanghai
    clock.set(clearing - timedelta(days=1))
    lots = (await gql.ok(EXPIRING, {"id": "m01"}, token=admin))["member"]["expiringPoints"]["lots"]
    assert lots == [
        {"points": 101, "expiresAt": "2027-12-31T16:00:00+00:00"},
        {"points": 500, "expiresAt": "2028-12-31T16:00:00+00:00"},  # earned in 2027: cleared a year later
    ]
    clock.set(clearing - timedelta(seconds=1))
    assert (await expire_points(db, services.ledger, batch_size=7, concurrency=3)).members == 0
    clock.set(clearing)
    report = await expire_points(db, services.ledger, batch_size=7, concurrency=3)
    earned_2026 = sum(100 + i for i in range(30))
    assert (report.members, report.batches, report.expired_lots) == (30, 5, 30)
    assert report.expired_points == earned_2026 - 40 and report.errors == []
    expired_at = {as_utc(e["expiredAt"]) async for e in db.ledger.find({"kind": "EXPIRE"})}
    assert expired_at == {clearing}
    assert (await member(gql, admin, "m00"))["points"] == {
        "available": 0,
        "pending": 0,
        "lifetimeEarned": 100,
        "spent": 40,
        "expired": 60,
    }
    m01 = (await member(gql, admin, "m01"))["points"]
    assert (m01["available"], m01["expired"]) == (500, 101)
    assert (await expire_points(db, services.ledger, batch_size=7, concurrency=3)).members == 0
    assert await audit_all(db) == []
