"""Scheduled jobs run on one replica at a time, under one lease mechanism (issue 11, items 13-14)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from gateway.core.settings import Settings
from gateway.features.audit import audit_all
from gateway.features.tiering import reevaluate_all
from gateway.store.leases import LEASES
from gateway.workers.scheduled import job_lease, run_scheduled
from gateway.workers.supervisor import workers_for
from tests.support.points_helpers import UPDATE_PROGRAM, member, purchase


async def wait_for(condition, timeout: float = 30.0) -> None:  # noqa: ANN001
    """Poll until ``condition()`` holds (an event, never a measured duration)."""
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.02)


async def test_one_replica_runs_a_job_at_a_time_and_another_takes_over(services):
    running, peak, runs = 0, 0, []

    def job_of(owner: str):  # noqa: ANN202
        async def job() -> str:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)  # room for an overlap, were there two runners
            running -= 1
            runs.append(owner)
            return f"run by {owner}"

        return job

    replicas = {
        owner: asyncio.create_task(run_scheduled(services, "demo", 0.02, job_of(owner), owner=owner, ttl_seconds=5))
        for owner in ("a", "b")
    }
    try:
        await wait_for(lambda: _at_least(runs, 5))
        holder = runs[0]
        assert set(runs) == {holder}  # the other replica never ran it
        replicas[holder].cancel()  # a graceful stop releases the lease at once
        await asyncio.gather(replicas[holder], return_exceptions=True)
        seen = len(runs)
        await wait_for(lambda: _at_least(runs, seen + 3))
        assert runs[-1] != holder
        assert peak == 1
    finally:
        for task in replicas.values():
            task.cancel()
        await asyncio.gather(*replicas.values(), return_exceptions=True)
    state = await services.db[LEASES].find_one({"_id": "job:demo"})
    assert state["lastSummary"].startswith("run by ") and state["lastError"] is None


async def _at_least(runs: list, count: int) -> bool:
    return len(runs) >= count


async def test_a_new_holder_waits_for_the_interval_recorded_on_the_lease(services):
    first = job_lease(services, "daily", owner="a", ttl_seconds=30)
    assert await first.acquire() is not None
    assert await first.claim_run(86_400)
    await first.finish_run("done")
    await first.release()
    second = job_lease(services, "daily", owner="b", ttl_seconds=30)
    assert await second.acquire() is not None  # took over at once
    assert not await second.claim_run(86_400)  # but the day has not passed since the last run
    assert await second.claim_run(0)
    assert not await first.claim_run(0)  # not the holder any more


async def test_a_failing_job_is_recorded_and_retried_next_interval(services):
    attempts = []

    async def job() -> str:
        attempts.append(1)
        raise RuntimeError("mongod unreachable")

    task = asyncio.create_task(run_scheduled(services, "flaky", 0.02, job, owner="a", ttl_seconds=5))
    try:
        await wait_for(lambda: _at_least(attempts, 2))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    state = await services.db[LEASES].find_one({"_id": "job:flaky"})
    assert state["lastError"] == "RuntimeError: mongod unreachable"


def test_tier_reevaluation_is_daily_by_default(settings):
    assert Settings().tier_reevaluation_interval_seconds == 86_400
    assert settings.job_lease_seconds > 0


async def test_tier_reevaluation_runs_in_server_under_the_lease(gql, admin, db, services, settings, clock):
    await gql.ok(UPDATE_PROGRAM, {"input": {"tierPolicy": {"validityDays": 30}}}, token=admin)
    assert (await purchase(gql, admin, "m", "o-1", 40_000))["tierAfter"] == "SENIOR"
    clock.advance(timedelta(days=60))  # the purchase left the 30-day window
    services.settings = settings.model_copy(update={"tier_reevaluation_interval_seconds": 3_600})
    workers = dict(workers_for(services))
    task = asyncio.create_task(workers["tier-reevaluation"](services))

    async def finished() -> bool:
        state = await db[LEASES].find_one({"_id": "job:tier-reevaluation"})
        return state is not None and state.get("lastFinishedAt") is not None

    try:
        await wait_for(finished)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    state = await db[LEASES].find_one({"_id": "job:tier-reevaluation"})
    assert state["lastSummary"] == "re-evaluated 1 members: 0 up, 1 down"
    assert (await member(gql, admin, "m"))["tier"]["code"] == "MEMBER"
    assert await audit_all(db) == []


async def test_without_a_window_only_members_on_a_removed_tier_code_are_moved(gql, admin, db, services):
    await purchase(gql, admin, "vip", "o-1", 200_000)
    await purchase(gql, admin, "straggler", "o-2", 40_000)
    # What a purchase committing while its tier was being removed leaves behind.
    await db.members.update_one({"_id": "straggler"}, {"$set": {"tier": "GOLD"}})
    report = await reevaluate_all(db, services.ledger)
    assert (report.members, report.upgraded, report.downgraded) == (1, 1, 0)
    assert (await member(gql, admin, "straggler"))["tier"]["code"] == "SENIOR"
    assert (await member(gql, admin, "vip"))["tier"]["code"] == "VIP"
