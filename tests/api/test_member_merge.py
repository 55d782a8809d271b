"""Merging the two accounts of one person through GraphQL, and undoing it."""

from __future__ import annotations

import asyncio

import pytest

from gateway.core.auth import Principal, Role
from gateway.features.audit import audit_all
from tests.conftest import token
from tests.support.catalog_helpers import CANCEL, create_gift, redeem
from tests.support.partner_helpers import add_partner
from tests.support.points_helpers import DEDUCT, PURCHASE, UPDATE_PROGRAM, purchase, refund

MERGE = """mutation($input: MergeMembersInput!) {
  mergeMembers(input: $input) {
    id sourceId targetId status availableMoved pendingMoved returnedPoints pointsNotReturned
  }
}"""
UNMERGE = """mutation($id: String!, $r: String!) {
  unmergeMembers(mergeId: $id, reason: $r) { id status returnedPoints pointsNotReturned }
}"""
MEMBER = """query($id: ID!) {
  member(id: $id) {
    id status mergedInto email lifetimeSpend tier { code } points { available pending held }
    partnerAccounts { partnerId partnerMemberRef }
    ledger(first: 1) { edges { node { kind points source { type } } } }
  }
}"""
ACCRUE = "mutation($input: PartnerAccrueInput!) { partnerAccrue(input: $input) { replayed } }"
SETUP = Principal(Role.ADMIN, "setup")


def merge_input(key: str = "merge-1", source: str = "a2", target: str = "a1") -> dict:
    return {
        "input": {"sourceId": source, "targetId": target, "reason": "same person, ticket 42", "idempotencyKey": key}
    }


@pytest.fixture
async def twins(gql, admin, services):
    """a1 (¥500 spent, SENIOR, partner own as a1-ref) and a2, the same person registered again
    (¥1,600 spent, an email, partners own as a2-ref and rival as a2-rival, a 300-point order placed)."""
    await gql.ok(UPDATE_PROGRAM, {"input": {"pendingDays": 0}}, token=admin)
    await purchase(gql, admin, "a1", "o-a1", 50_000)
    await gql.ok(
        'mutation { registerMember(input: {id: "a2", displayName: "A. Two", email: "a@two.cn"}) { id } }',
        token=admin,
    )
    await purchase(gql, admin, "a2", "o-a2", 160_000)
    own = await add_partner(services, "own")
    rival = await add_partner(services, "rival")
    await services.partner_links.link(SETUP, "a1", "own", "a1-ref")
    await services.partner_links.link(SETUP, "a2", "own", "a2-ref")
    await services.partner_links.link(SETUP, "a2", "rival", "a2-rival")
    gift = (await create_gift(gql, admin, points=300, stock=5))["id"]
    order = (await redeem(gql, token(Role.MEMBER, "a2"), "a2", gift, "r-a2"))["data"]["redeemGift"]["id"]
    return {"own": own, "rival": rival, "order": order}


async def seen(gql, admin, member_id):
    return (await gql.ok(MEMBER, {"id": member_id}, token=admin))["member"]


async def test_a_merge_moves_points_orders_purchases_and_links(gql, admin, db, twins):
    merged = (await gql.ok(MERGE, merge_input(), token=admin))["mergeMembers"]
    assert merged["status"] == "MERGED" and merged["availableMoved"] == 1_300 and merged["pendingMoved"] == 0

    a1 = await seen(gql, admin, "a1")
    assert a1["points"] == {"available": 1_800, "pending": 0, "held": 0}
    assert a1["lifetimeSpend"] == 210_000 and a1["tier"]["code"] == "VIP"  # ¥2,100 together
    assert a1["email"] == "a@two.cn"  # a blank filled from the duplicate
    assert a1["ledger"]["edges"][0]["node"] == {"kind": "MERGE_IN", "points": 1_300, "source": {"type": "MERGE"}}
    assert sorted((p["partnerId"], p["partnerMemberRef"]) for p in a1["partnerAccounts"]) == [
        ("own", "a1-ref"),
        ("rival", "a2-rival"),
    ]
    a2 = await seen(gql, admin, "a2")
    assert (a2["status"], a2["mergedInto"], a2["email"]) == ("MERGED", "a1", None)
    assert a2["points"] == {"available": 0, "pending": 0, "held": 0}
    assert a2["ledger"]["edges"][0]["node"] == {"kind": "MERGE_OUT", "points": -1_300, "source": {"type": "MERGE"}}

    # the old id is a tombstone pointing at the survivor
    body = await gql(
        PURCHASE, {"input": {"memberId": "a2", "orderId": "o-x", "amount": 100, "idempotencyKey": "x"}}, token=admin
    )
    assert body["errors"][0]["extensions"]["code"] == "MEMBER_MERGED"
    assert body["errors"][0]["extensions"]["mergedInto"] == "a1"
    # partners reach the person through the links that moved; the doubled partner keeps the target's ref
    rival, own = twins["rival"], twins["own"]
    await gql.ok(ACCRUE, {"input": {"eventId": "e-1", "memberRef": "a2-rival", "points": 20}}, api_key=rival.api_key)
    assert (
        await gql.error_code(
            ACCRUE, {"input": {"eventId": "e-2", "memberRef": "a2-ref", "points": 5}}, api_key=own.api_key
        )
        == "MEMBER_NOT_LINKED"
    )
    # the duplicate's order and purchase now belong to the survivor
    await gql.ok(CANCEL, {"id": twins["order"]}, token=admin)
    await refund(gql, admin, "a1", "o-a2", 60_000, "rf-1")
    a1 = await seen(gql, admin, "a1")
    assert a1["points"]["available"] == 1_800 + 20 + 300 - 600
    assert await audit_all(db) == []

    # the same request again, or the same pair under another key, is the same merge
    assert (await gql.ok(MERGE, merge_input(), token=admin))["mergeMembers"]["id"] == merged["id"]
    assert (await gql.ok(MERGE, merge_input("merge-2"), token=admin))["mergeMembers"]["id"] == merged["id"]
    entries = await db["adminAudit"].find({"action": "member.merge"}).to_list()
    assert len(entries) == 1 and entries[0]["details"]["points"] == {"available": 1_300, "pending": 0}
    exported = await gql.ok(
        'mutation { exportMemberData(memberId: "a2", reason: "PIPL-5") { sections { name documents } } }', token=admin
    )
    sections = {s["name"]: s["documents"] for s in exported["exportMemberData"]["sections"]}
    assert sections["merges"] == 1 and sections["purchases"] == 0  # its purchases are the survivor's now


async def test_undoing_a_merge_returns_what_is_left_and_keeps_what_was_spent(gql, admin, db, services, twins):
    merged = (await gql.ok(MERGE, merge_input(), token=admin))["mergeMembers"]
    big = (await create_gift(gql, admin, points=1_000, stock=5))["id"]
    spent = await redeem(gql, token(Role.MEMBER, "a1"), "a1", big, "r-a1")  # takes from both accounts' lots
    order = spent["data"]["redeemGift"]["id"]
    a2_lots = await db.lots.find({"memberId": "a1", "source.id": "o-a2"}).to_list()
    a2_left = sum(lot["remaining"] for lot in a2_lots)  # what is left of the duplicate's points

    undone = await gql.ok(UNMERGE, {"id": merged["id"], "r": "not the same person after all"}, token=admin)
    undone = undone["unmergeMembers"]
    assert undone["status"] == "REVERSED"
    assert undone["returnedPoints"] == a2_left
    assert undone["pointsNotReturned"] == 1_300 - a2_left
    a1, a2 = await seen(gql, admin, "a1"), await seen(gql, admin, "a2")
    assert a2["status"] == "ACTIVE" and a2["mergedInto"] is None and a2["email"] == "a@two.cn"
    assert a2["points"]["available"] == a2_left
    assert a1["points"]["available"] == 1_800 - 1_000 - a2_left
    assert (a1["tier"]["code"], a1["lifetimeSpend"], a1["email"]) == ("SENIOR", 50_000, None)
    assert sorted((p["partnerId"], p["partnerMemberRef"]) for p in a2["partnerAccounts"]) == [
        ("own", "a2-ref"),
        ("rival", "a2-rival"),
    ]
    assert [p["partnerId"] for p in a1["partnerAccounts"]] == ["own"]
    # a2's purchase is theirs again; a1's order, paid partly with a2's old points, comes back to a1
    await refund(gql, admin, "a2", "o-a2", 10_000, "rf-2")
    before = (await seen(gql, admin, "a1"))["points"]["available"]
    await gql.ok(CANCEL, {"id": order}, token=admin)
    assert (await seen(gql, admin, "a1"))["points"]["available"] == before + 1_000
    assert await audit_all(db) == []
    assert await gql.error_code(UNMERGE, {"id": merged["id"], "r": "again"}, token=admin) == "INVALID_STATE"
    assert [e["action"] for e in await db["adminAudit"].find({"targetKind": "member"}).sort("seq", 1).to_list()] == [
        "member.merge",
        "member.unmerge",
    ]


async def test_merges_that_cannot_happen_change_nothing(gql, admin, twins):
    assert await gql.error_code(MERGE, merge_input(source="a1"), token=admin) == "BAD_USER_INPUT"
    assert await gql.error_code(MERGE, merge_input(source="ghost"), token=admin) == "MEMBER_NOT_FOUND"
    await gql.ok(
        DEDUCT,
        {
            "input": {
                "memberId": "a2",
                "orderId": "till-1",
                "orderAmount": 10_000,
                "points": 100,
                "idempotencyKey": "d-1",
            }
        },
        token=admin,
    )
    assert await gql.error_code(MERGE, merge_input("k-busy"), token=admin) == "ACCOUNT_BUSY"
    await gql.ok('mutation { freezeMember(memberId: "a1", reason: "check") { id } }', token=admin)
    assert await gql.error_code(MERGE, merge_input("k-frozen", source="a1", target="a2"), token=admin) == (
        "MEMBER_FROZEN"
    )
    assert await gql.error_code(UNMERGE, {"id": "mrg_nope", "r": "x"}, token=admin) == "NOT_FOUND"
    for role in (Role.SUPPORT, Role.MARKETING):
        assert await gql.error_code(MERGE, merge_input("k-r"), token=token(role, "x")) == "FORBIDDEN"


async def test_activity_racing_a_merge_lands_on_one_side_or_is_told_where_to_go(gql, admin, db, twins):
    """Purchases on both accounts and partner accruals race the merge: each either commits before it
    (and moves with the account) or after it (and meets the tombstone); nothing is lost or doubled."""
    rival = twins["rival"]

    async def buy(member_id: str, n: int) -> str:
        variables = {
            "input": {
                "memberId": member_id,
                "orderId": f"race-{member_id}-{n}",
                "amount": 10_000,
                "idempotencyKey": f"race-{member_id}-{n}",
            }
        }
        body = await gql(PURCHASE, variables, token=admin)
        return body["errors"][0]["extensions"]["code"] if body.get("errors") else "OK"

    async def accrue(n: int) -> str:
        variables = {"input": {"eventId": f"race-{n}", "memberRef": "a2-rival", "points": 7}}
        body = await gql(ACCRUE, variables, api_key=rival.api_key)
        return body["errors"][0]["extensions"]["code"] if body.get("errors") else "OK"

    results = await asyncio.gather(
        gql(MERGE, merge_input("race"), token=admin),
        *(buy("a2", n) for n in range(4)),
        *(buy("a1", n) for n in range(4)),
        *(accrue(n) for n in range(4)),
    )
    merge, outcomes = results[0], results[1:]
    assert "errors" not in merge, merge
    assert set(outcomes[:4]) <= {"OK", "MEMBER_MERGED"}
    assert outcomes[4:] == ["OK"] * 8  # the survivor's purchases and the moving link always land
    bought_on_a2 = outcomes[:4].count("OK")
    earned = [
        e["points"] async for e in db.ledger.find({"kind": "PURCHASE", "source.id": {"$regex": "^race-"}})
    ]  # 100 each, or 120 once the merge made a1 VIP
    assert len(earned) == 4 + bought_on_a2
    a1 = await seen(gql, admin, "a1")
    assert a1["points"]["available"] == 1_800 + sum(earned) + 7 * 4
    assert (await seen(gql, admin, "a2"))["points"]["available"] == 0
    assert await db["purchases"].count_documents({"memberId": "a1"}) == 2 + 4 + bought_on_a2
    assert await audit_all(db) == []
