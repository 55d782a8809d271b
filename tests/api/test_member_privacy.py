"""PIPL through GraphQL: export everything about a member, erase their personal data, books intact."""

from __future__ import annotations

import json

import pytest

from gateway.core.auth import Principal, Role
from gateway.features.audit import audit_all
from gateway.store.privacy import NOT_EXPORTED, SECTIONS
from tests.conftest import token
from tests.support.catalog_helpers import FULFILL, create_gift, redeem
from tests.support.partner_helpers import add_partner
from tests.support.points_helpers import CHECK_IN, PURCHASE, UPDATE_PROGRAM, grant, purchase, refund

EXPORT = """mutation($id: ID!, $r: String!) {
  exportMemberData(memberId: $id, reason: $r) { memberId exportedAt sections { name documents } document }
}"""
ERASE = """mutation($id: ID!, $r: String!) {
  eraseMemberData(memberId: $id, reason: $r) {
    forfeitedPoints partnerLinksRemoved notificationsScrubbed
    member { id displayName email phone birthday status points { available pending expired } }
  }
}"""
SEARCH = "query($f: MemberFilterInput) { members(filter: $f) { edges { node { id } } } }"
ACCRUE = "mutation($input: PartnerAccrueInput!) { partnerAccrue(input: $input) { replayed } }"
FREEZE = 'mutation { freezeMember(memberId: "pat", reason: "identity check") { status } }'
UNFREEZE = 'mutation { unfreezeMember(memberId: "pat", reason: "identity confirmed") { status } }'
PERSONAL = ("Patricia Wong", "pat.wong@example.cn", "139 1234 5678", "pat-ref-88", "1990-05-17")


@pytest.fixture
async def pat(gql, admin, services):
    """pat: a profile with contact details and a little of everything the gateway records."""
    await gql.ok(UPDATE_PROGRAM, {"input": {"pendingDays": 0}}, token=admin)
    await gql.ok(
        "mutation($i: RegisterMemberInput!) { registerMember(input: $i) { id } }",
        {
            "i": {
                "id": "pat",
                "displayName": PERSONAL[0],
                "email": PERSONAL[1],
                "phone": PERSONAL[2],
                "birthday": PERSONAL[4],
            }
        },
        token=admin,
    )
    await purchase(gql, admin, "pat", "o-1", 400_000)  # SENIOR: a tier change and growth
    await refund(gql, admin, "pat", "o-1", 50_000, "rf-1")
    await grant(gql, admin, "pat", 120, "g-1", reason="welcome gift")
    await gql.ok(CHECK_IN, {"id": "pat", "key": "ci-1"}, token=token(Role.MEMBER, "pat"))
    own = await add_partner(services, "own")
    await services.partner_links.link(Principal(Role.ADMIN, "setup"), "pat", "own", PERSONAL[3])
    await gql.ok(ACCRUE, {"input": {"eventId": "e-1", "memberRef": PERSONAL[3], "points": 40}}, api_key=own.api_key)
    gift = (await create_gift(gql, admin, points=300, stock=5))["id"]
    order = (await redeem(gql, token(Role.MEMBER, "pat"), "pat", gift, "r-1"))["data"]["redeemGift"]["id"]
    await gql.ok(FULFILL, {"id": order}, token=admin)
    await gql.ok(FREEZE, token=admin)
    await gql.ok(UNFREEZE, token=admin)
    return own


async def exported(gql, who="PIPL-2026-001") -> dict:
    data = (await gql.ok(EXPORT, {"id": "pat", "r": who}, token=token(Role.ADMIN, "dpo-1")))["exportMemberData"]
    document = json.loads(data["document"])
    assert {s["name"]: s["documents"] for s in data["sections"]} == {
        name: len(value) for name, value in document.items() if isinstance(value, list)
    }
    return document


async def test_the_export_holds_everything_about_the_member(gql, db, pat):
    document = await exported(gql)
    assert document["format"] == "loyalty-gateway/member-export/v1"
    profile = document["member"]
    assert (profile["displayName"], profile["email"], profile["phone"], profile["birthday"]) == (
        PERSONAL[0],
        PERSONAL[1],
        PERSONAL[2],
        PERSONAL[4],
    )
    assert "search" not in profile and "lockVersion" not in profile
    assert len(document["ledger"]) == await db.ledger.count_documents({"memberId": "pat"})
    assert {e["kind"] for e in document["ledger"]} >= {
        "PURCHASE",
        "REFUND",
        "GRANT",
        "CHECK_IN",
        "PARTNER_ACCRUE",
        "REDEMPTION",
    }
    assert [p["orderId"] for p in document["purchases"]] == ["o-1"]
    assert document["partnerLinks"][0]["partnerMemberRef"] == PERSONAL[3]
    assert document["redemptions"][0]["status"] == "FULFILLED"
    assert document["tierChanges"] and document["growthEvents"] and document["lots"]
    actions = [a["action"] for a in document["staffActions"]]
    assert [a for a in actions if a.startswith("member.")] == ["member.freeze", "member.unfreeze"]
    assert "points.grant" in actions
    assert all("actor" not in a for a in document["staffActions"])  # the staff member's name is theirs
    entry = await db["adminAudit"].find_one({"action": "member.export"})
    assert entry["reason"] == "PIPL-2026-001" and entry["details"]["sections"]["ledger"] == len(document["ledger"])


async def test_every_collection_with_member_data_is_exported_or_excused(gql, db, pat):
    exported_collections = {collection for collection, _ in SECTIONS.values()}
    for name in await db.db.list_collection_names():
        if await db[name].count_documents({"memberId": "pat"}, limit=1):
            assert name in exported_collections or name in NOT_EXPORTED, f"{name} holds pat's data, not exported"


async def test_erasure_pseudonymizes_and_the_books_still_reconcile(gql, admin, db, services, pat):
    before = await services.members.get("pat")
    held = before["balances"]["available"] + before["balances"]["pending"]
    entries = await db.ledger.count_documents({"memberId": "pat"})
    erased = (await gql.ok(ERASE, {"id": "pat", "r": "PIPL-2026-002"}, token=admin))["eraseMemberData"]
    assert erased["forfeitedPoints"] == held > 0
    assert erased["partnerLinksRemoved"] == 1
    member = erased["member"]
    assert member == {
        "id": "pat",
        "displayName": "Erased member",
        "email": None,
        "phone": None,
        "birthday": None,
        "status": "CLOSED",
        "points": {"available": 0, "pending": 0, "expired": before["balances"]["expired"] + held},
    }
    # the ledger keeps every amount, plus the forfeit; balances still equal the ledger
    assert await db.ledger.count_documents({"memberId": "pat"}) == entries + 1
    assert await audit_all(db) == []
    assert (await db["purchases"].find_one({"memberId": "pat"}))["amount"] == 400_000

    # nothing personal is left anywhere the export reaches, and search no longer finds them
    text = json.dumps(await exported(gql, "PIPL-2026-003"))
    for value in PERSONAL:
        assert value not in text, value
    for filter_fields in ({"name": "Patricia"}, {"phone": "5678"}, {"email": "pat.wong"}):
        assert (await gql.ok(SEARCH, {"f": filter_fields}, token=admin))["members"]["edges"] == []

    # a closed account neither earns nor spends; partners no longer reach it; erasure does not repeat
    purchase_again = {"input": {"memberId": "pat", "orderId": "o-2", "amount": 100, "idempotencyKey": "k-2"}}
    assert await gql.error_code(PURCHASE, purchase_again, token=admin) == "MEMBER_CLOSED"
    accrue = {"input": {"eventId": "e-2", "memberRef": PERSONAL[3], "points": 1}}
    assert await gql.error_code(ACCRUE, accrue, api_key=pat.api_key) == "MEMBER_NOT_LINKED"
    assert await gql.error_code(ERASE, {"id": "pat", "r": "again"}, token=admin) == "MEMBER_CLOSED"
    erasure = await db["adminAudit"].find_one({"action": "member.erase"})
    assert erasure["details"]["forfeitedPoints"] == held and PERSONAL[0] not in json.dumps(erasure, default=str)


async def test_erasure_waits_for_unfinished_orders(gql, admin, pat):
    gift = (await create_gift(gql, admin, points=100, stock=5))["id"]
    await redeem(gql, token(Role.MEMBER, "pat"), "pat", gift, "r-2")  # placed, not shipped yet
    assert await gql.error_code(ERASE, {"id": "pat", "r": "PIPL-9"}, token=admin) == "ACCOUNT_BUSY"
    assert await gql.error_code(ERASE, {"id": "pat", "r": " "}, token=admin) == "BAD_USER_INPUT"
