"""The demo seed reaches its tiers through real purchases and is safe to run twice."""

from __future__ import annotations

from gateway.audit import audit_all
from gateway.demo import seed_demo
from tests.points_helpers import member


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
