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


async def test_hits_far_below_the_limit_are_admitted_early_and_all_counted(db: Database) -> None:
    """Below half the limit a hit does not wait for its count; every hit is counted all the same,
    and near the limit hits get their exact places again."""
    limits = HardeningSettings(rate_limit_member=10).rate_limits
    limiter = RateLimiter(db, CLOCK, limits)
    results = [await limiter.hit("member", "alice") for _ in range(14)]
    assert [r is None for r in results] == [True] * 10 + [False] * 4
    burst = await asyncio.gather(*(limiter.hit("member", "bob") for _ in range(3)))
    assert all(r is None for r in burst)
    results = [await limiter.hit("member", "bob") for _ in range(9)]
    assert [r is None for r in results] == [True] * 7 + [False] * 2
    await limiter.flushed()
    _, start, _ = limiter._window()
    assert await window_count(db, "member:alice", start) == 14
    assert await window_count(db, "member:bob", start) == 12


async def test_another_replicas_hits_end_early_admission(db: Database) -> None:
    """A replica admits early only on a recent count; the count it gets back includes the others'."""
    limits = HardeningSettings(rate_limit_member=10).rate_limits
    here, there = RateLimiter(db, CLOCK, limits), RateLimiter(db, CLOCK, limits)
    assert await here.hit("member", "alice") is None  # count 1: hits here may now go early
    assert all([await there.hit("member", "alice") is None for _ in range(7)])  # count 8
    assert await here.hit("member", "alice") is None  # early (here knew 1): the 9th, counted after
    await here.flushed()
    assert await here.hit("member", "alice") is None  # here now knows 9: the 10th waits for its place
    assert await here.hit("member", "alice") is not None  # the 11th
    assert await there.hit("member", "alice") is not None
