"""Concurrent hits of one key share an upsert and still get their exact places in the count."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from gateway.core.clock import FrozenClock
from gateway.core.hardening import HardeningSettings
from gateway.features.guard import RateLimiter
from gateway.store.guard import window_count
from gateway.store.mongo import Database

CLOCK = FrozenClock(datetime(2026, 11, 29, 22, 0, 30, tzinfo=UTC))  # mid-window: one window for the whole test


async def test_a_burst_of_one_key_is_counted_exactly_and_refused_past_the_limit(db: Database) -> None:
    limits = HardeningSettings(rate_limit_member=25).rate_limits
    limiter = RateLimiter(db, CLOCK, limits)
    refusals = await asyncio.gather(*(limiter.hit("member", "alice") for _ in range(40)))
    assert sum(r is None for r in refusals) == 25
    assert all(r is not None and r.scope == "member" for r in refusals[25:])  # places follow arrival order
    _, start, _ = limiter._window()
    assert await window_count(db, "member:alice", start) == 40  # refused hits count too, as before
    # another replica sees the same count: its first hit is the 41st
    other = RateLimiter(db, CLOCK, limits)
    assert await other.hit("member", "alice") is not None
    assert await other.hit("member", "bob") is None
    assert await window_count(db, "member:alice", start) == 41


async def test_hits_of_different_keys_do_not_share_a_count(db: Database) -> None:
    limiter = RateLimiter(db, CLOCK, HardeningSettings(rate_limit_partner=1).rate_limits)
    results = await asyncio.gather(*(limiter.hit("partner", f"p{i % 3}") for i in range(6)))
    assert [r is None for r in results] == [True, True, True, False, False, False]
