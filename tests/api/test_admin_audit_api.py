"""The admin audit log through the API: filters, cursor pages, the chain check, and the CLI's verify."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

from gateway.core.auth import Principal, Role
from gateway.core.clock import FrozenClock
from gateway.domain.admin_audit import AuditAction
from gateway.services import Services
from gateway.store.mongo import Database
from tests.conftest import JWT_SECRET, GraphQLClient, token

LOG = """query($filter: AdminAuditFilter, $first: Int, $after: String) {
  adminAuditLog(filter: $filter, first: $first, after: $after) {
    edges { cursor node { seq action actorRole actor targetKind targetId at details reason requestId hash } }
    pageInfo { hasNextPage endCursor }
  }
}"""
VERIFY = "{ adminAuditVerification { intact entries brokenAt } }"
OPS = Principal(Role.ADMIN, "ops-1")
CS = Principal(Role.SUPPORT, "cs-7")
AUDITOR = token(Role.ADMIN, "auditor")


async def seed(services: Services, clock: FrozenClock) -> None:
    audit = services.admin_audit
    await audit.record(OPS, AuditAction.GIFT_CREATE, "gift", "mug", {"name": "Mug"})
    clock.advance(timedelta(hours=1))
    await audit.record(CS, AuditAction.POINTS_GRANT, "member", "ann", {"points": 50}, reason="late parcel")
    clock.advance(timedelta(hours=1))
    await audit.record(OPS, AuditAction.PARTNER_KEY_ROTATE, "partner", "air", {})
    clock.advance(timedelta(hours=1))
    await audit.record(CS, AuditAction.POINTS_ADJUST, "member", "ann", {"points": -20}, reason="duplicate")
    clock.advance(timedelta(hours=1))
    await audit.record(OPS, AuditAction.GIFT_DELETE, "gift", "mug", {})


async def log(gql: GraphQLClient, **variables: Any) -> list[dict[str, Any]]:
    page = (await gql.ok(LOG, variables, token=AUDITOR))["adminAuditLog"]
    return [edge["node"] for edge in page["edges"]]


async def test_the_log_reads_newest_first_with_every_filter(
    services: Services, gql: GraphQLClient, clock: FrozenClock
) -> None:
    start = clock.now()
    await seed(services, clock)
    everything = await log(gql)
    assert [e["seq"] for e in everything] == [5, 4, 3, 2, 1]
    ann = everything[1]
    assert ann["action"] == "points.adjust" and ann["actorRole"] == "support" and ann["actor"] == "cs-7"
    assert ann["details"] == {"points": -20} and ann["reason"] == "duplicate" and len(ann["hash"]) == 64

    grants = await log(gql, filter={"actions": ["points.grant", "points.adjust"]})
    assert [e["seq"] for e in grants] == [4, 2]
    assert [e["seq"] for e in await log(gql, filter={"actor": "ops-1"})] == [5, 3, 1]
    assert [e["seq"] for e in await log(gql, filter={"targetKind": "gift", "targetId": "mug"})] == [5, 1]
    window = {"since": (start + timedelta(hours=1)).isoformat(), "until": (start + timedelta(hours=3)).isoformat()}
    assert [e["seq"] for e in await log(gql, filter=window)] == [3, 2]
    both = {"actor": "cs-7", "since": (start + timedelta(hours=2)).isoformat()}
    assert [e["seq"] for e in await log(gql, filter=both)] == [4]

    bad = {"filter": {"actions": ["points.teleport"]}}
    assert await gql.error_code(LOG, bad, token=AUDITOR) == "BAD_USER_INPUT"
    backwards = {"filter": {"since": start.isoformat(), "until": start.isoformat()}}
    assert await gql.error_code(LOG, backwards, token=AUDITOR) == "BAD_USER_INPUT"
    assert await gql.error_code(LOG, {"after": "bm90LWEtc2Vx"}, token=AUDITOR) == "BAD_USER_INPUT"
    for role in (Role.SUPPORT, Role.FINANCE, Role.MARKETING, Role.WAREHOUSE, Role.DASHBOARD, Role.MEMBER):
        assert await gql.error_code(LOG, {}, token=token(role, "x")) == "FORBIDDEN"


async def test_pages_follow_the_cursor_with_a_filter(services: Services, gql: GraphQLClient, clock: FrozenClock):
    for n in range(7):
        await services.admin_audit.record(OPS, AuditAction.GIFT_RESTOCK, "gift", f"g{n}", {"quantity": n})
        await services.admin_audit.record(CS, AuditAction.POINTS_GRANT, "member", f"m{n}", {"points": n})
    seen: list[int] = []
    after = None
    while True:
        page = (
            await gql.ok(LOG, {"filter": {"actions": ["gift.restock"]}, "first": 3, "after": after}, token=AUDITOR)
        )["adminAuditLog"]
        seen += [edge["node"]["seq"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [13, 11, 9, 7, 5, 3, 1]


async def test_a_real_action_is_in_the_log_with_its_request_id(services: Services, gql: GraphQLClient, http: Any):
    await gql.ok('mutation { updateProgram(input: {name: "Renamed"}) { name } }', token=AUDITOR)
    [entry] = await log(gql, filter={"actions": ["config.change"]})
    assert entry["actor"] == "auditor" and entry["targetKind"] == "program" and entry["targetId"] == "settings"
    assert any(change["path"] == "name" and change["new"] == "Renamed" for change in entry["details"]["changes"])
    response = await http.post(
        "/graphql",
        json={"query": 'mutation { updateProgram(input: {name: "Again"}) { name } }'},
        headers={"Authorization": f"Bearer {AUDITOR}", "X-Request-Id": "req-audit-1"},
    )
    assert "errors" not in response.json()
    newest = (await log(gql, first=1))[0]
    assert newest["requestId"] == "req-audit-1"


async def test_verification_finds_an_edited_or_removed_entry(
    services: Services, gql: GraphQLClient, clock: FrozenClock
) -> None:
    assert (await gql.ok(VERIFY, token=AUDITOR))["adminAuditVerification"] == {
        "intact": True,
        "entries": 0,
        "brokenAt": None,
    }
    await seed(services, clock)
    assert (await gql.ok(VERIFY, token=AUDITOR))["adminAuditVerification"] == {
        "intact": True,
        "entries": 5,
        "brokenAt": None,
    }
    await services.db["adminAudit"].update_one({"seq": 2}, {"$set": {"details.points": 5000}})
    assert (await gql.ok(VERIFY, token=AUDITOR))["adminAuditVerification"] == {
        "intact": False,
        "entries": 5,
        "brokenAt": 2,
    }
    await services.db["adminAudit"].update_one({"seq": 2}, {"$set": {"details.points": 50}})
    await services.db["adminAudit"].delete_one({"seq": 5})
    assert (await gql.ok(VERIFY, token=AUDITOR))["adminAuditVerification"]["brokenAt"] == 5
    assert await gql.error_code(VERIFY, token=token(Role.SUPPORT, "cs")) == "FORBIDDEN"


def run_cli(db: Database, mongo_uri: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env.update(LOYALTY_MONGODB_URI=mongo_uri, LOYALTY_DATABASE=db.db.name, LOYALTY_JWT_SECRET=JWT_SECRET)
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, env=env, timeout=60
    )


async def test_cli_audit_log_verify(services: Services, db: Database, mongo_uri: str, clock: FrozenClock) -> None:
    await seed(services, clock)
    clean = await asyncio.to_thread(run_cli, db, mongo_uri, "audit-log", "verify")
    assert clean.returncode == 0, clean.stderr
    assert "audit log intact: 5 entries" in clean.stdout
    await db["adminAudit"].update_one({"seq": 3}, {"$set": {"actor": "someone-else"}})
    broken = await asyncio.to_thread(run_cli, db, mongo_uri, "audit-log", "verify")
    assert broken.returncode == 1
    assert "BROKEN at entry 3 of 5" in broken.stderr
