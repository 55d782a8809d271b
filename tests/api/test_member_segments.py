"""The RFM segment snapshot: each member's segment is the analytics' RFM, and the search filters on it."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest

from gateway.core.auth import Role
from gateway.domain.analytics import quintile, segment
from gateway.features.audit import audit_all
from gateway.store.leases import LEASES
from gateway.workers.supervisor import workers_for
from tests.api.test_scheduled_jobs import wait_for
from tests.conftest import token
from tests.support.points_helpers import purchase, refund

REFRESH = "mutation { refreshMemberSegments { asOf windowFrom windowTo scored segments { segment members } } }"
SNAPSHOT = "{ memberSegmentSnapshot { asOf scored segments { segment members } } }"
SEARCH = """query($f: MemberFilterInput) {
  members(filter: $f, first: 100) { edges { node { id rfm { segment recency frequency monetary } } } }
}"""
RFM_ANALYTICS = "query($from: Date!, $to: Date!) { memberAnalytics(from: $from, to: $to) { rfm { segment members } } }"

# member -> [(days before now, amount in fen)]: a spread of recency, frequency and spend
BUYERS = {
    "champ": [(1, 90_000), (5, 80_000), (9, 70_000), (20, 60_000)],
    "loyal": [(40, 10_000), (50, 10_000), (60, 10_000), (70, 10_000)],
    "newbie": [(0, 5_000)],
    "sleepy": [(300, 2_000)],
    "lapsed": [(200, 30_000), (210, 30_000), (220, 30_000)],
    "middle": [(100, 20_000), (120, 20_000)],
    "refunded": [(2, 50_000)],
}


@pytest.fixture
async def buyers(gql, admin, clock):
    """Purchases placed at their days ago: the clock starts far back and walks forward."""
    now = clock.now()
    events = sorted(
        ((days, member, i, amount) for member, rows in BUYERS.items() for i, (days, amount) in enumerate(rows)),
        reverse=True,
    )
    for days, member_id, i, amount in events:
        clock.set(now - timedelta(days=days))
        await purchase(gql, admin, member_id, f"{member_id}-{i}", amount)
    clock.set(now)
    await refund(gql, admin, "refunded", "refunded-0", 45_000, "r-1")
    await gql.ok(
        "mutation($i: RegisterMemberInput!) { registerMember(input: $i) { id } }",
        {"i": {"id": "window-shopper", "displayName": "Never bought"}},
        token=admin,
    )


def expected_segments() -> dict[str, str]:
    """The RFM rules applied by hand (domain functions) to the purchases above, net of the refund."""
    stats = {}
    for member, rows in BUYERS.items():
        spend = sum(a for _, a in rows) - (45_000 if member == "refunded" else 0)
        stats[member] = (-min(d for d, _ in rows), len(rows), spend)  # later purchase = larger recency value

    def ranks(index: int) -> dict[str, int]:
        values = sorted(s[index] for s in stats.values())
        return {m: values.index(s[index]) + 1 for m, s in stats.items()}  # ties share the lowest rank

    r, f, m = ranks(0), ranks(1), ranks(2)
    n = len(stats)
    return {k: str(segment(quintile(r[k], n), quintile(f[k], n), quintile(m[k], n))) for k in stats}


async def test_each_member_gets_the_analytics_rfm_segment_and_the_search_filters_on_it(gql, admin, buyers, db):
    support = token(Role.SUPPORT, "cs-1")
    assert (await gql.ok(SNAPSHOT, token=support))["memberSegmentSnapshot"] is None

    snapshot = (await gql.ok(REFRESH, token=admin))["refreshMemberSegments"]
    expected = expected_segments()
    assert snapshot["scored"] == len(BUYERS)
    assert {s["segment"]: s["members"] for s in snapshot["segments"]} == dict(Counter(expected.values()))

    # the analytics over the same window count the same segments
    analytics = await gql.ok(RFM_ANALYTICS, {"from": snapshot["windowFrom"], "to": snapshot["windowTo"]}, token=admin)
    assert sorted(snapshot["segments"], key=str) == sorted(analytics["memberAnalytics"]["rfm"], key=str)

    for name in set(expected.values()):
        found = await gql.ok(SEARCH, {"f": {"segments": [name]}}, token=support)
        assert sorted(e["node"]["id"] for e in found["members"]["edges"]) == sorted(
            m for m, s in expected.items() if s == name
        )
    everyone = await gql.ok(SEARCH, {}, token=support)
    rfm = {e["node"]["id"]: e["node"]["rfm"] for e in everyone["members"]["edges"]}
    assert rfm["window-shopper"] is None
    # 2nd most recent and tied most frequent of 7 buyers: quintile 4; the biggest spender: 5
    assert rfm["champ"] == {"segment": "CHAMPIONS", "recency": 4, "frequency": 4, "monetary": 5}
    assert (await gql.ok(SNAPSHOT, token=support))["memberSegmentSnapshot"]["scored"] == len(BUYERS)
    entries = await db["adminAudit"].find({"action": "member_segments.refresh"}).to_list()
    assert len(entries) == 1 and entries[0]["details"]["scored"] == len(BUYERS)


async def test_a_member_sees_no_segment_of_their_own(gql, admin, buyers):
    await gql.ok(REFRESH, token=admin)
    me = await gql.ok("{ me { id rfm { segment } } }", token=token(Role.MEMBER, "champ"))
    assert me["me"]["rfm"] is None


async def test_a_buyer_who_left_the_window_loses_the_segment(gql, admin, buyers, clock):
    await gql.ok(REFRESH, token=admin)
    clock.advance(timedelta(days=100))  # "sleepy" bought 400 days ago now: outside the 365-day window
    snapshot = (await gql.ok(REFRESH, token=admin))["refreshMemberSegments"]
    assert snapshot["scored"] == len(BUYERS) - 1
    found = await gql.ok(SEARCH, {"f": {"name": "sleepy"}}, token=admin)
    assert found["members"]["edges"][0]["node"]["rfm"] is None


async def test_the_snapshot_runs_daily_in_the_server_under_a_lease(services, settings, buyers, db, gql):
    services.settings = settings.model_copy(update={"member_segment_interval_seconds": 3_600})
    task = asyncio.create_task(dict(workers_for(services))["member-segments"](services))

    async def finished() -> bool:
        state = await db[LEASES].find_one({"_id": "job:member-segments"})
        return state is not None and state.get("lastFinishedAt") is not None

    try:
        await wait_for(finished)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    state = await db[LEASES].find_one({"_id": "job:member-segments"})
    assert state["lastSummary"].startswith(f"{len(BUYERS)} members scored")
    assert await audit_all(db) == []
