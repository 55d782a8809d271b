"""The demo seed reaches its tiers through real purchases and is safe to run twice."""

from __future__ import annotations

from gateway.demo.seed import seed_demo
from gateway.features.audit import audit_all
from tests.support.points_helpers import member


async def test_demo_members_earn_their_tiers_and_points(gql, admin, services, db):
    first = await seed_demo(services)
    assert "5 members created" in first and "4 demo purchases" in first
    again = await seed_demo(services)
    assert "0 members created" in again and "0 demo purchases" in again
    tiers = {}
    for member_id in ("demo-lin", "demo-wang", "demo-chen", "demo-zhao", "demo-liu"):
        seen = await member(gql, admin, member_id)
        tiers[member_id] = (seen["tier"]["code"], seen["points"]["available"])
    assert tiers == {
        "demo-lin": ("MEMBER", 0),
        "demo-wang": ("MEMBER", 120),
        "demo-chen": ("SENIOR", 450),
        "demo-zhao": ("VIP", 2_600),
        "demo-liu": ("SUPREME_VIP", 7_200),
    }
    assert await db["tier_changes"].count_documents({"memberId": "demo-liu"}) == 1
    assert await audit_all(db) == []


async def test_demo_partner_is_created_once_with_a_working_key_and_linked_members(gql, admin, services, db):
    import re

    from gateway.web.authenticate import principal_from_api_key

    first = await seed_demo(services)
    api_key = re.search(r"X-Api-Key (\S+)", first).group(1)
    assert (await principal_from_api_key(db, api_key)).subject == "demo-coffee"
    again = await seed_demo(services)
    assert "X-Api-Key" not in again and "already there" in again
    data = await gql.ok('{ member(id: "demo-chen") { partnerAccounts { partnerId partnerMemberRef } } }', token=admin)
    assert data["member"]["partnerAccounts"] == [{"partnerId": "demo-coffee", "partnerMemberRef": "BEAN-1001"}]
