"""Hand grants under control, through the GraphQL API: support's limits and the two-person rule.

Default settings: support moves at most 1,000 points per grant and 10,000 per local day; a grant
moving more than 100,000 points waits for a second admin; a request expires after 72 hours.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from gateway.core.auth import Role
from gateway.core.clock import FrozenClock
from gateway.features.admin_audit import AuditQuery
from gateway.features.audit import audit_all
from gateway.services import Services
from tests.conftest import GraphQLClient, token
from tests.support.catalog_helpers import member_with

GRANT = """mutation($input: GrantPointsInput!) {
  grantPoints(input: $input) {
    points replayed status entries { delta { available } }
    members { id points { available } }
    request { id status totalPoints memberIds points reason requestedBy { role subject } expiresAt }
  }
}"""
REQUESTS = """query($status: GrantRequestStatus, $first: Int, $after: String) {
  grantRequests(status: $status, first: $first, after: $after) {
    edges { node { id status totalPoints requestedBy { subject } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
APPROVE = """mutation($id: ID!, $note: String) {
  approveGrantRequest(id: $id, note: $note) {
    id status note decidedBy { role subject } entries { memberId delta { available } }
  }
}"""
REJECT = "mutation($id: ID!, $reason: String!) { rejectGrantRequest(id: $id, reason: $reason) { id status note } }"
BALANCE = "query($id: ID!) { member(id: $id) { points { available } } }"

ADMIN_1 = token(Role.ADMIN, "admin-1")
ADMIN_2 = token(Role.ADMIN, "admin-2")
ADMIN_3 = token(Role.ADMIN, "admin-3")
SUPPORT = token(Role.SUPPORT, "cs-7")
SUPPORT_OTHER = token(Role.SUPPORT, "cs-8")


def grant_input(member: str | list[str], points: int, key: str, reason: str = "goodwill") -> dict[str, Any]:
    members = {"memberIds": member} if isinstance(member, list) else {"memberId": member}
    return {"input": {**members, "points": points, "reason": reason, "idempotencyKey": key}}


async def available(gql: GraphQLClient, member_id: str) -> int:
    return (await gql.ok(BALANCE, {"id": member_id}, token=ADMIN_1))["member"]["points"]["available"]


async def audit_actions(services: Services) -> list[str]:
    return [e["action"] for e in reversed(await services.admin_audit.search(AuditQuery(), limit=100))]


async def test_support_grants_within_its_limit_and_is_refused_above_it(services: Services, gql: GraphQLClient):
    await member_with(services, "ann", points=500)
    posted = (await gql.ok(GRANT, grant_input("ann", 1_000, "g1"), token=SUPPORT))["grantPoints"]
    assert posted["status"] == "POSTED" and posted["request"] is None
    assert posted["members"][0]["points"]["available"] == 1_500
    # Per grant: 1,001 points, or 600 to each of two members, is too much for one support grant.
    assert await gql.error_code(GRANT, grant_input("ann", 1_001, "g2"), token=SUPPORT) == "GRANT_LIMIT_EXCEEDED"
    # Far above it too: support's limit refuses before the two-person threshold would file a request.
    assert await gql.error_code(GRANT, grant_input("ann", 200_000, "g2b"), token=SUPPORT) == "GRANT_LIMIT_EXCEEDED"
    await member_with(services, "bob")
    two = grant_input(["ann", "bob"], 600, "g3")
    body = await gql(GRANT, two, token=SUPPORT)
    assert body["errors"][0]["extensions"] == {
        "code": "GRANT_LIMIT_EXCEEDED",
        "limit": "PER_GRANT",
        "limitPoints": 1_000,
        "points": 1_200,
    }
    # A take-back counts the same: support moves points by hand either way within the limit.
    assert await gql.error_code(GRANT, grant_input("ann", -1_001, "g4"), token=SUPPORT) == "GRANT_LIMIT_EXCEEDED"
    taken = (await gql.ok(GRANT, grant_input("ann", -300, "g5"), token=SUPPORT))["grantPoints"]
    assert taken["members"][0]["points"]["available"] == 1_200
    # An admin has no per-grant limit (below the two-person threshold it posts at once).
    assert (await gql.ok(GRANT, grant_input("ann", 50_000, "g6"), token=ADMIN_1))["grantPoints"]["status"] == "POSTED"
    assert await available(gql, "ann") == 51_200
    assert await audit_actions(services) == ["points.grant", "points.adjust", "points.grant"]
    assert await audit_all(services.db) == []


async def test_support_daily_limit_is_per_agent_and_per_local_day(
    services: Services, gql: GraphQLClient, clock: FrozenClock
):
    await member_with(services, "ann")
    for n in range(10):
        await gql.ok(GRANT, grant_input("ann", 1_000, f"d{n}"), token=SUPPORT)
    body = await gql(GRANT, grant_input("ann", 1, "d10"), token=SUPPORT)
    assert body["errors"][0]["extensions"]["code"] == "GRANT_LIMIT_EXCEEDED"
    assert body["errors"][0]["extensions"]["usedToday"] == 10_000
    assert await gql.error_code(GRANT, grant_input("ann", 1, "d11"), token=SUPPORT) == "GRANT_LIMIT_EXCEEDED"
    # A replay of a grant already made is not a new grant: it answers as before.
    replay = (await gql.ok(GRANT, grant_input("ann", 1_000, "d3"), token=SUPPORT))["grantPoints"]
    assert replay["replayed"] is True
    # Another agent has a day of their own.
    await gql.ok(GRANT, grant_input("ann", 1_000, "o1"), token=SUPPORT_OTHER)
    # The next local day (Asia/Shanghai) starts afresh.
    clock.advance(timedelta(days=1))
    await gql.ok(GRANT, grant_input("ann", 1_000, "d12"), token=SUPPORT)
    assert await available(gql, "ann") == 12_000


async def test_concurrent_support_grants_never_pass_the_daily_limit(services: Services, gql: GraphQLClient):
    await member_with(services, "ann")
    await member_with(services, "bob")
    bodies = await asyncio.gather(
        *(gql(GRANT, grant_input("ann" if n % 2 else "bob", 1_000, f"r{n}"), token=SUPPORT) for n in range(14))
    )
    codes = sorted((b.get("errors") or [{"extensions": {"code": "OK"}}])[0]["extensions"]["code"] for b in bodies)
    assert codes == ["GRANT_LIMIT_EXCEEDED"] * 4 + ["OK"] * 10
    assert await available(gql, "ann") + await available(gql, "bob") == 10_000
    assert (await audit_actions(services)).count("points.grant") == 10


async def test_concurrent_grants_by_one_admin_each_leave_one_sealed_entry(services: Services, gql: GraphQLClient):
    """One admin's grants share no audit document in their transactions; each returns with its
    entry chained, in one gapless chain the verification accepts."""
    for n in range(16):
        await member_with(services, f"m{n}")
    bodies = await asyncio.gather(*(gql.ok(GRANT, grant_input(f"m{n}", 10, f"c{n}"), token=ADMIN_1) for n in range(16)))
    assert {b["grantPoints"]["status"] for b in bodies} == {"POSTED"}
    entries = await services.db["adminAudit"].find({"action": "points.grant"}).sort("seq", 1).to_list()
    assert [e["seq"] for e in entries] == list(range(1, 17))
    assert sorted(e["targetId"] for e in entries) == sorted(f"m{n}" for n in range(16))
    assert await services.admin_audit.verify() is None
    assert await audit_all(services.db) == []


async def test_a_large_grant_waits_for_a_second_admin_and_posts_once(services: Services, gql: GraphQLClient):
    await member_with(services, "ann")
    await member_with(services, "bob")
    filed = (await gql.ok(GRANT, grant_input(["ann", "bob"], 60_000, "big"), token=ADMIN_1))["grantPoints"]
    assert filed["status"] == "PENDING_APPROVAL" and filed["entries"] == []
    request = filed["request"]
    assert request["status"] == "PENDING" and request["totalPoints"] == 120_000
    assert request["requestedBy"] == {"role": "admin", "subject": "admin-1"}
    assert await available(gql, "ann") == 0  # nothing posted
    # The same request again is a replay, not a second request.
    again = (await gql.ok(GRANT, grant_input(["bob", "ann"], 60_000, "big"), token=ADMIN_1))["grantPoints"]
    assert again["replayed"] is True and again["request"]["id"] == request["id"]
    queue = (await gql.ok(REQUESTS, {}, token=ADMIN_2))["grantRequests"]["edges"]
    assert [e["node"]["id"] for e in queue] == [request["id"]]

    # The requester cannot approve their own request; support cannot approve at all.
    refused = await gql.error_code(APPROVE, {"id": request["id"]}, token=ADMIN_1)
    assert refused == "SECOND_APPROVER_REQUIRED"
    assert await gql.error_code(APPROVE, {"id": request["id"]}, token=SUPPORT) == "FORBIDDEN"

    approved = (await gql.ok(APPROVE, {"id": request["id"], "note": "checked"}, token=ADMIN_2))["approveGrantRequest"]
    assert approved["status"] == "APPROVED" and approved["note"] == "checked"
    assert approved["decidedBy"] == {"role": "admin", "subject": "admin-2"}
    assert sorted(e["memberId"] for e in approved["entries"]) == ["ann", "bob"]
    assert await available(gql, "ann") == 60_000 and await available(gql, "bob") == 60_000
    assert await gql.error_code(APPROVE, {"id": request["id"]}, token=ADMIN_3) == "GRANT_REQUEST_NOT_PENDING"
    assert (await gql.ok(REQUESTS, {}, token=ADMIN_2))["grantRequests"]["edges"] == []
    approved_list = (await gql.ok(REQUESTS, {"status": "APPROVED"}, token=SUPPORT))["grantRequests"]["edges"]
    assert [e["node"]["status"] for e in approved_list] == ["APPROVED"]
    # Replaying the original grantPoints still answers with its request, now approved: no second posting.
    replay = (await gql.ok(GRANT, grant_input(["ann", "bob"], 60_000, "big"), token=ADMIN_1))["grantPoints"]
    assert replay["request"]["status"] == "APPROVED" and await available(gql, "ann") == 60_000
    assert await audit_actions(services) == ["grant.requested", "grant.approved"]
    entries = await services.admin_audit.search(AuditQuery(actions=["grant.approved"]), limit=5)
    assert entries[0]["actor"] == "admin-2" and entries[0]["details"]["requestedBy"]["subject"] == "admin-1"
    assert await audit_all(services.db) == []


async def test_two_approvals_racing_post_the_grant_exactly_once(services: Services, gql: GraphQLClient):
    await member_with(services, "ann")
    filed = (await gql.ok(GRANT, grant_input("ann", 200_000, "race"), token=ADMIN_1))["grantPoints"]
    request_id = filed["request"]["id"]
    approvers = [token(Role.ADMIN, f"approver-{n}") for n in range(8)]
    bodies = await asyncio.gather(*(gql(APPROVE, {"id": request_id}, token=t) for t in approvers))
    winners = [b for b in bodies if "errors" not in b]
    assert len(winners) == 1
    assert {b["errors"][0]["extensions"]["code"] for b in bodies if "errors" in b} == {"GRANT_REQUEST_NOT_PENDING"}
    assert await available(gql, "ann") == 200_000
    ledger = await services.db["ledger"].count_documents({"memberId": "ann", "kind": "GRANT"})
    assert ledger == 1
    assert (await audit_actions(services)).count("grant.approved") == 1


async def test_a_rejected_request_posts_nothing_and_stays_rejected(services: Services, gql: GraphQLClient):
    await member_with(services, "ann")
    request_id = (await gql.ok(GRANT, grant_input("ann", 150_000, "rej"), token=ADMIN_1))["grantPoints"]["request"][
        "id"
    ]
    assert await gql.error_code(REJECT, {"id": request_id, "reason": " "}, token=ADMIN_2) == "BAD_USER_INPUT"
    rejected = (await gql.ok(REJECT, {"id": request_id, "reason": "no ticket"}, token=ADMIN_2))["rejectGrantRequest"]
    assert rejected == {"id": request_id, "status": "REJECTED", "note": "no ticket"}
    assert await gql.error_code(APPROVE, {"id": request_id}, token=ADMIN_3) == "GRANT_REQUEST_NOT_PENDING"
    assert await gql.error_code(REJECT, {"id": request_id, "reason": "x"}, token=ADMIN_3) == "GRANT_REQUEST_NOT_PENDING"
    assert await gql.error_code(APPROVE, {"id": "grq_nope"}, token=ADMIN_3) == "GRANT_REQUEST_NOT_FOUND"
    assert await available(gql, "ann") == 0
    # The requester may withdraw their own request (rejecting moves nothing).
    own = (await gql.ok(GRANT, grant_input("ann", 150_000, "own"), token=ADMIN_1))["grantPoints"]["request"]["id"]
    withdrawn = (await gql.ok(REJECT, {"id": own, "reason": "typo"}, token=ADMIN_1))["rejectGrantRequest"]
    assert withdrawn["status"] == "REJECTED"
    assert await audit_actions(services) == ["grant.requested", "grant.rejected", "grant.requested", "grant.rejected"]


async def test_an_undecided_request_expires(services: Services, gql: GraphQLClient, clock: FrozenClock):
    await member_with(services, "ann")
    request_id = (await gql.ok(GRANT, grant_input("ann", 150_000, "exp"), token=ADMIN_1))["grantPoints"]["request"][
        "id"
    ]
    clock.advance(timedelta(hours=72))
    assert await gql.error_code(APPROVE, {"id": request_id}, token=ADMIN_2) == "GRANT_REQUEST_EXPIRED"
    assert await gql.error_code(REJECT, {"id": request_id, "reason": "late"}, token=ADMIN_2) == "GRANT_REQUEST_EXPIRED"
    assert (await gql.ok(REQUESTS, {}, token=ADMIN_2))["grantRequests"]["edges"] == []
    expired = (await gql.ok(REQUESTS, {"status": "EXPIRED"}, token=ADMIN_2))["grantRequests"]["edges"]
    assert [(e["node"]["id"], e["node"]["status"]) for e in expired] == [(request_id, "EXPIRED")]
    assert await available(gql, "ann") == 0


async def test_an_approved_take_back_the_member_cannot_cover_fails_and_stays_pending(
    services: Services, gql: GraphQLClient
):
    await member_with(services, "ann", points=100_000)
    request_id = (await gql.ok(GRANT, grant_input("ann", -150_000, "tb"), token=ADMIN_1))["grantPoints"]["request"][
        "id"
    ]
    assert await gql.error_code(APPROVE, {"id": request_id}, token=ADMIN_2) == "INSUFFICIENT_POINTS"
    queue = (await gql.ok(REQUESTS, {}, token=ADMIN_2))["grantRequests"]["edges"]
    assert [e["node"]["status"] for e in queue] == ["PENDING"]
    assert await available(gql, "ann") == 100_000


async def test_the_queue_pages_newest_first(services: Services, gql: GraphQLClient, clock: FrozenClock):
    await member_with(services, "ann")
    ids = []
    for n in range(5):
        filed = await gql.ok(GRANT, grant_input("ann", 100_001 + n, f"q{n}"), token=ADMIN_1)
        ids.append(filed["grantPoints"]["request"]["id"])
        clock.advance(timedelta(minutes=1))
    seen: list[str] = []
    after = None
    while True:
        page = (await gql.ok(REQUESTS, {"first": 2, "after": after}, token=ADMIN_2))["grantRequests"]
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == list(reversed(ids))
