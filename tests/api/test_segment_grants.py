"""Segment grants through GraphQL: dry run, a job interrupted midway and resumed (each member granted
exactly once), progress, the snapshot's boundaries, skipped members, approval, cancellation, the lease."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from gateway.core.auth import Role
from gateway.core.clock import FrozenClock
from gateway.features.admin_audit import AuditQuery
from gateway.features.audit import audit_all
from gateway.services import Services
from gateway.store.segment_grants import TARGETS
from gateway.workers.scheduled import run_scheduled
from tests.conftest import GraphQLClient, token
from tests.support.points_helpers import register

MARKETING = token(Role.MARKETING, "mkt-1")
SUPPORT = token(Role.SUPPORT, "cs-1")

JOB_FIELDS = """
  id status points reason total snapshotted granted skipped pending percent pointsTotal pointsGranted
  createdBy approvedBy cancelledBy replayed filter
"""
PREVIEW = """query($f: MemberFilterInput, $p: Int!) {
  segmentGrantPreview(filter: $f, points: $p) { members points pointsTotal needsApproval approvalThreshold } }"""
START = f"mutation($i: SegmentGrantInput!) {{ startSegmentGrant(input: $i) {{ {JOB_FIELDS} }} }}"
GET = f"query($id: ID!) {{ segmentGrant(id: $id) {{ {JOB_FIELDS} }} }}"
TARGETS_OF = """query($id: ID!, $s: SegmentGrantTargetStatus) { segmentGrant(id: $id) {
  targets(status: $s, first: 100) { edges { node { memberId status code } } } } }"""
APPROVE = f"mutation($id: ID!) {{ approveSegmentGrant(id: $id, note: \"ok\") {{ {JOB_FIELDS} }} }}"
CANCEL = f"mutation($id: ID!, $r: String!) {{ cancelSegmentGrant(id: $id, reason: $r) {{ {JOB_FIELDS} }} }}"
LIST = "{ segmentGrants(first: 10) { edges { node { id status } } } }"
GOLD = {"name": "gold"}


async def members(gql: GraphQLClient, admin: str, gold: int = 10, plain: int = 5) -> list[str]:
    ids = []
    for i in range(gold):
        await register(gql, admin, f"g{i:02d}", displayName=f"Gold {i}")
        ids.append(f"g{i:02d}")
    for i in range(plain):
        await register(gql, admin, f"p{i:02d}", displayName=f"Plain {i}")
    return ids


async def start(gql: GraphQLClient, who: str = MARKETING, key: str = "job-1", **fields: Any) -> dict[str, Any]:
    payload = {"filter": GOLD, "points": 50, "reason": "Double 11 thank-you", "idempotencyKey": key, **fields}
    return (await gql.ok(START, {"i": payload}, token=who))["startSegmentGrant"]


async def job(gql: GraphQLClient, job_id: str) -> dict[str, Any]:
    return (await gql.ok(GET, {"id": job_id}, token=MARKETING))["segmentGrant"]


async def grants_by_member(services: Services, job_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    async for entry in services.db.ledger.find({"source.type": "SEGMENT_GRANT", "source.id": job_id}):
        assert entry["kind"] == "GRANT" and entry["points"] == 50
        counts[entry["memberId"]] = counts.get(entry["memberId"], 0) + 1
    return counts


async def test_the_dry_run_counts_members_and_points_and_writes_nothing(
    gql: GraphQLClient, admin: str, services: Services
):
    await members(gql, admin)
    preview = (await gql.ok(PREVIEW, {"f": GOLD, "p": 50}, token=MARKETING))["segmentGrantPreview"]
    assert preview == {
        "members": 10,
        "points": 50,
        "pointsTotal": 500,
        "needsApproval": False,
        "approvalThreshold": 100_000,
    }
    everyone = (await gql.ok(PREVIEW, {"p": 10_000}, token=MARKETING))["segmentGrantPreview"]
    assert (everyone["members"], everyone["pointsTotal"], everyone["needsApproval"]) == (15, 150_000, True)
    assert await services.db["segment_grants"].count_documents({}) == 0
    assert await gql.error_code(PREVIEW, {"f": GOLD, "p": 0}, token=MARKETING) == "BAD_USER_INPUT"
    assert await gql.error_code(PREVIEW, {"f": {"phone": "12"}, "p": 5}, token=MARKETING) == "BAD_USER_INPUT"
    assert await gql.error_code(PREVIEW, {"f": GOLD, "p": 5}, token=SUPPORT) == "FORBIDDEN"


async def test_a_job_interrupted_midway_and_resumed_grants_each_member_exactly_once(
    gql: GraphQLClient, admin: str, services: Services
):
    gold = await members(gql, admin)
    created = await start(gql)
    assert (created["status"], created["total"], created["granted"]) == ("PREPARING", None, 0)
    runner = services.segment_grants
    runner.batch_size = 3  # small pages and batches, so the interruptions fall mid-job
    # first run: the snapshot, then 4 grants, then it stops (a replica going away between batches)
    assert await runner.run_job(created["id"], max_members=4) == (4, 0)
    midway = await job(gql, created["id"])
    assert (midway["status"], midway["total"], midway["snapshotted"]) == ("RUNNING", 10, 10)
    assert (midway["granted"], midway["pending"], midway["percent"], midway["pointsGranted"]) == (4, 6, 40, 200)
    # second run: killed while granting (the task is cancelled mid-batch, mid-transaction)
    task = asyncio.create_task(runner.run_job(created["id"]))

    async def more_granted() -> bool:
        counts = await services.db[TARGETS].count_documents({"jobId": created["id"], "status": "GRANTED"})
        return counts >= 6

    async with asyncio.timeout(60):
        while not await more_granted():
            await asyncio.sleep(0.001)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # two runners resume at once (as after a lost lease): still exactly once each
    await asyncio.gather(runner.run_job(created["id"]), runner.run_job(created["id"]))
    done = await job(gql, created["id"])
    assert (done["status"], done["granted"], done["skipped"], done["pending"], done["percent"]) == (
        "COMPLETED",
        10,
        0,
        0,
        100,
    )
    assert await grants_by_member(services, created["id"]) == dict.fromkeys(gold, 1)
    for member_id in gold:
        assert (await services.members.get(member_id))["balances"]["available"] == 50
    assert (await services.members.get("p00"))["balances"]["available"] == 0
    assert await audit_all(services.db) == []
    # running a completed job again does nothing
    assert await runner.run_job(created["id"]) == (0, 0)
    assert sum((await grants_by_member(services, created["id"])).values()) == 10


async def test_the_snapshot_is_the_segment_when_the_job_was_created(
    gql: GraphQLClient, admin: str, services: Services, clock: FrozenClock
):
    gold = await members(gql, admin, gold=5, plain=0)
    await services.db.members.update_one({"_id": "g04"}, {"$set": {"status": "CLOSED"}})  # erased: not in it
    gold.remove("g04")
    created = await start(gql)
    clock.advance(timedelta(seconds=1))
    await register(gql, admin, "late", displayName="Gold latecomer")  # joined after the job was created
    await services.segment_grants.run_job(created["id"], max_members=0)  # the snapshot only
    assert (await job(gql, created["id"]))["total"] == 4
    # a member who leaves the segment while the job runs is still granted (the job grants what was previewed)
    rename = "mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { displayName } }"
    await gql.ok(rename, {"i": {"memberId": "g00", "displayName": "Renamed"}}, token=admin)
    # a member frozen after the snapshot, and one that disappears, are skipped with the ledger's reason
    freeze = "mutation($id: ID!) { freezeMember(memberId: $id, reason: \"chargeback\") { status } }"
    assert (await gql.ok(freeze, {"id": "g02"}, token=admin))["freezeMember"]["status"] == "FROZEN"
    await services.db.members.delete_one({"_id": "g01"})
    await services.segment_grants.run_job(created["id"])
    done = await job(gql, created["id"])
    assert (done["status"], done["granted"], done["skipped"], done["pointsGranted"]) == ("COMPLETED", 2, 2, 100)
    skipped = (await gql.ok(TARGETS_OF, {"id": created["id"], "s": "SKIPPED"}, token=MARKETING))["segmentGrant"]
    assert [e["node"] for e in skipped["targets"]["edges"]] == [
        {"memberId": "g01", "status": "SKIPPED", "code": "MEMBER_NOT_FOUND"},
        {"memberId": "g02", "status": "SKIPPED", "code": "MEMBER_FROZEN"},
    ]
    assert set(await grants_by_member(services, created["id"])) == set(gold) - {"g01", "g02"}
    # frozen members are not in a new job's snapshot at all
    preview = (await gql.ok(PREVIEW, {"f": GOLD, "p": 1}, token=MARKETING))["segmentGrantPreview"]
    assert preview["members"] == 2  # g03 and the latecomer: g00 renamed, g01 gone, g02 frozen, g04 closed


async def test_the_same_key_returns_the_same_job_and_an_empty_segment_completes_at_once(
    gql: GraphQLClient, admin: str, services: Services
):
    await members(gql, admin, gold=2, plain=0)
    first = await start(gql)
    again = await start(gql)
    assert again["id"] == first["id"] and again["replayed"] and not first["replayed"]
    changed = {"filter": GOLD, "points": 51, "reason": "x", "idempotencyKey": "job-1"}
    assert await gql.error_code(START, {"i": changed}, token=MARKETING) == "IDEMPOTENCY_CONFLICT"
    bad = {"filter": GOLD, "points": 100_001, "reason": "x", "idempotencyKey": "job-2"}
    assert await gql.error_code(START, {"i": bad}, token=MARKETING) == "BAD_USER_INPUT"
    assert await gql.error_code(START, {"i": {**bad, "points": 5}}, token=SUPPORT) == "FORBIDDEN"
    nobody = await start(gql, key="job-3", filter={"name": "nobody"})
    await services.segment_grants.run_job(nobody["id"])
    assert (await job(gql, nobody["id"]))["status"] == "COMPLETED"
    listed = (await gql.ok(LIST, token=MARKETING))["segmentGrants"]["edges"]
    assert [e["node"]["id"] for e in listed] == [nobody["id"], first["id"]]


async def test_a_large_grant_waits_for_a_second_person(gql: GraphQLClient, admin: str, services: Services):
    await members(gql, admin)
    services.segment_grants.approval_threshold = 499  # 10 members × 50 = 500 points: above
    created = await start(gql)
    await services.segment_grants.run_job(created["id"])
    waiting = await job(gql, created["id"])
    assert (waiting["status"], waiting["total"], waiting["pointsTotal"], waiting["granted"]) == (
        "AWAITING_APPROVAL",
        10,
        500,
        0,
    )
    assert await gql.error_code(APPROVE, {"id": created["id"]}, token=MARKETING) == "FORBIDDEN"
    approved = (await gql.ok(APPROVE, {"id": created["id"]}, token=admin))["approveSegmentGrant"]
    assert (approved["status"], approved["approvedBy"]) == ("RUNNING", "admin-1")
    assert await gql.error_code(APPROVE, {"id": created["id"]}, token=admin) == "INVALID_STATE"
    await services.segment_grants.run_job(created["id"])
    assert (await job(gql, created["id"]))["granted"] == 10
    # an admin cannot approve their own large grant
    own = await start(gql, who=admin, key="own")
    await services.segment_grants.run_job(own["id"])
    assert await gql.error_code(APPROVE, {"id": own["id"]}, token=admin) == "SECOND_APPROVER_REQUIRED"
    second_admin = token(Role.ADMIN, "admin-2")
    assert (await gql.ok(APPROVE, {"id": own["id"]}, token=second_admin))["approveSegmentGrant"]["status"] == "RUNNING"
    entries = await services.admin_audit.search(AuditQuery(target_kind="segmentGrant"), limit=20)
    assert sorted(e["details"]["event"] for e in entries) == ["approved", "approved", "created", "created"]


async def test_a_cancelled_job_stops_and_keeps_what_it_granted(gql: GraphQLClient, admin: str, services: Services):
    await members(gql, admin)
    created = await start(gql)
    services.segment_grants.batch_size = 3
    await services.segment_grants.run_job(created["id"], max_members=3)
    cancelled = (await gql.ok(CANCEL, {"id": created["id"], "r": "wrong segment"}, token=MARKETING))[
        "cancelSegmentGrant"
    ]
    assert (cancelled["status"], cancelled["cancelledBy"], cancelled["granted"]) == ("CANCELLED", "mkt-1", 3)
    assert await services.segment_grants.run_job(created["id"]) == (0, 0)
    assert sum((await grants_by_member(services, created["id"])).values()) == 3
    assert await gql.error_code(CANCEL, {"id": created["id"], "r": "again"}, token=MARKETING) == "INVALID_STATE"
    assert await gql.error_code(GET, {"id": "missing"}, token=MARKETING) == "NOT_FOUND"
    entries = await services.admin_audit.search(AuditQuery(target_kind="segmentGrant"), limit=10)
    assert sorted(e["details"]["event"] for e in entries) == ["cancelled", "created"]


async def test_the_worker_runs_jobs_on_one_replica_under_the_lease(gql: GraphQLClient, admin: str, services: Services):
    gold = await members(gql, admin)
    created = await start(gql)
    services.segment_grants.batch_size = 2

    async def job_run() -> object:
        return await services.segment_grants.run_pending()

    replicas = [
        asyncio.create_task(run_scheduled(services, "segment-grants", 0.05, job_run, owner=o, ttl_seconds=5))
        for o in ("a", "b")
    ]
    try:
        async with asyncio.timeout(60):
            while (await job(gql, created["id"]))["status"] != "COMPLETED":
                await asyncio.sleep(0.02)
    finally:
        for task in replicas:
            task.cancel()
        await asyncio.gather(*replicas, return_exceptions=True)
    assert await grants_by_member(services, created["id"]) == dict.fromkeys(gold, 1)


async def test_a_members_data_export_lists_the_segment_grants_it_was_in(
    gql: GraphQLClient, admin: str, services: Services
):
    await members(gql, admin, gold=2, plain=0)
    created = await start(gql)
    await services.segment_grants.run_job(created["id"])
    export = """mutation($id: ID!, $r: String!) {
      exportMemberData(memberId: $id, reason: $r) { document sections { name documents } } }"""
    data = (await gql.ok(export, {"id": "g00", "r": "PIPL-1"}, token=admin))["exportMemberData"]
    assert {"name": "segmentGrants", "documents": 1} in data["sections"]


async def test_the_servers_worker_runs_a_started_job(gql: GraphQLClient, admin: str, services: Services):
    from gateway.workers.supervisor import workers_for

    gold = await members(gql, admin, gold=3, plain=0)
    created = await start(gql)
    worker = asyncio.create_task(dict(workers_for(services))["segment-grants"](services))
    try:
        async with asyncio.timeout(60):  # the run is over once the lease records how it ended
            while not (lease := await services.db["leases"].find_one({"_id": "job:segment-grants"})) or not (
                lease.get("lastSummary")
            ):
                await asyncio.sleep(0.02)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    assert (await job(gql, created["id"]))["status"] == "COMPLETED"
    assert await grants_by_member(services, created["id"]) == dict.fromkeys(gold, 1)
    assert lease["lastSummary"] == "segment grant jobs worked on: 1; members granted: 3, skipped: 0"
