"""Tiers over time: growth value, rolling validity windows and downgrades."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from gateway.features.audit import audit_all
from gateway.features.tiering import reevaluate_all
from tests.conftest import JWT_SECRET
from tests.support.points_helpers import BEHAVIOUR, CHECK_IN, UPDATE_PROGRAM, member, purchase, register


async def test_rolling_window_downgrades_members_who_stop_buying(gql, admin, db, services, clock):
    await gql.ok(UPDATE_PROGRAM, {"input": {"tierPolicy": {"validityDays": 365}}}, token=admin)
    await purchase(gql, admin, "m", "o-1", 200_000)  # VIP
    clock.advance(timedelta(days=200))
    await purchase(gql, admin, "m", "o-2", 40_000)  # ¥400 inside the window later on
    report = await reevaluate_all(db, services.ledger)
    assert (report.members, report.downgraded) == (1, 0)
    clock.advance(timedelta(days=170))  # o-1 left the window: ¥400 remains → SENIOR
    report = await reevaluate_all(db, services.ledger)
    assert report.downgraded == 1
    seen = await member(gql, admin, "m")
    assert seen["tier"]["code"] == "SENIOR" and seen["lifetimeSpend"] == 240_000
    progress = await gql.ok(
        'query { member(id: "m") { tierProgress { basis value windowDays } nextTier { tier { code } remaining } } }',
        token=admin,
    )
    assert progress["member"]["tierProgress"] == {"basis": "SPEND", "value": 40_000, "windowDays": 365}
    # lifetime spend is ¥2,400 (VIP by lifetime) but only ¥400 counts inside the window
    assert progress["member"]["nextTier"] == {"tier": {"code": "VIP"}, "remaining": 160_000}
    change = await db["tier_changes"].find_one({"direction": "DOWN"})
    assert (change["fromTier"], change["toTier"], change["reason"]) == ("VIP", "SENIOR", "Periodic re-evaluation")
    # purchases never downgrade: a small order now keeps SENIOR even though the window holds little
    clock.advance(timedelta(days=400))
    assert (await purchase(gql, admin, "m", "o-3", 100))["tierAfter"] == "SENIOR"
    await reevaluate_all(db, services.ledger)
    assert (await member(gql, admin, "m"))["tier"]["code"] == "MEMBER"
    assert await audit_all(db) == []


async def test_without_validity_tiers_are_for_life(gql, admin, db, services, clock):
    await purchase(gql, admin, "m", "o-1", 200_000)
    clock.advance(timedelta(days=2_000))
    assert (await reevaluate_all(db, services.ledger)).downgraded == 0
    assert (await member(gql, admin, "m"))["tier"]["code"] == "VIP"


UPDATE_TIERS = """
mutation($tiers: [TierInput!]!) { updateTiers(tiers: $tiers) { tiers { code threshold benefits { code } } } }
"""


async def test_growth_basis_counts_engagement_and_is_never_spent(gql, admin, db, clock):
    await gql.ok(
        UPDATE_PROGRAM,
        {"input": {"tierPolicy": {"basis": "GROWTH"}, "growth": {"perYuan": 1, "checkIn": 10, "behaviour": 40}}},
        token=admin,
    )
    tiers = [
        {"code": "FAN", "name": "Fan", "threshold": 0, "pricePercent": 100},
        {
            "code": "STAR",
            "name": "Star",
            "threshold": 100,
            "pricePercent": 95,
            "benefits": [{"code": "FREE_SHIPPING", "description": "1/week", "quota": {"count": 1, "period": "WEEK"}}],
        },
    ]
    changed = await gql.ok(UPDATE_TIERS, {"tiers": tiers}, token=admin)
    assert [t["code"] for t in changed["updateTiers"]["tiers"]] == ["FAN", "STAR"]
    await register(gql, admin, "m")
    await gql.ok(CHECK_IN, {"id": "m"}, token=admin)
    await gql.ok(BEHAVIOUR, {"id": "m", "event": "REVIEW", "key": "r0"}, token=admin)
    seen = await member(gql, admin, "m")
    assert seen["growthValue"] == 50 and seen["tier"]["code"] == "FAN"
    await gql.ok(BEHAVIOUR, {"id": "m", "event": "REVIEW", "key": "r1"}, token=admin)
    await gql.ok(
        "mutation($i: DeductPointsInput!) { deductPointsAtCheckout(input: $i) { points } }",
        {"i": {"memberId": "m", "orderId": "c", "orderAmount": 10_000, "points": 20, "idempotencyKey": "d"}},
        token=admin,
    )
    seen = await member(gql, admin, "m")
    assert seen["growthValue"] == 90 and seen["points"]["available"] == 5  # using points leaves growth alone
    bought = await purchase(gql, admin, "m", "o-1", 1_000)  # ¥10 → 10 growth → 100 → STAR
    assert bought["member"]["growthValue"] == 100 and bought["tierAfter"] == "STAR"
    unsorted = [dict(tiers[1]), dict(tiers[0])]
    assert await gql.error_code(UPDATE_TIERS, {"tiers": unsorted}, token=admin) == "BAD_USER_INPUT"
    assert await audit_all(db) == []


def run_cli(db, mongo_uri, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env.update(LOYALTY_MONGODB_URI=mongo_uri, LOYALTY_DATABASE=db.db.name, LOYALTY_JWT_SECRET=JWT_SECRET)
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, env=env, timeout=60
    )


async def test_cli_reevaluate_tiers(gql, admin, db, mongo_uri, clock):
    clock.set(datetime.now(UTC) - timedelta(days=60))  # the CLI runs on the system clock
    await gql.ok(UPDATE_PROGRAM, {"input": {"tierPolicy": {"validityDays": 30}}}, token=admin)
    assert (await purchase(gql, admin, "m", "o-1", 40_000))["tierAfter"] == "SENIOR"
    result = await asyncio.to_thread(run_cli, db, mongo_uri, "reevaluate-tiers")
    assert result.returncode == 0, result.stderr
    assert "re-evaluated 1 members: 0 up, 1 down" in result.stdout
