"""The pure analytics formulas (gateway/domain/analytics.py): examples and properties."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.analytics import (
    Advice,
    CatalogCost,
    Cohort,
    Flows,
    HealthThresholds,
    Range,
    Segment,
    Sums,
    breakage_rate,
    channel,
    default_cost_per_point,
    entry_flows,
    fen,
    flows,
    growth,
    health,
    local_midnight,
    month_end,
    monthly,
    months_between,
    quintile,
    seal_boundary,
    segment,
)
from gateway.events.throttle import batches

KINDS = [
    "PURCHASE", "CHECK_IN", "REFERRAL", "BEHAVIOUR", "GRANT", "ADJUSTMENT", "RELEASE", "EXPIRE", "REFUND",
    "DEDUCTION", "DEDUCTION_RETURN", "REDEMPTION", "REDEMPTION_CANCEL", "PARTNER_ACCRUE", "PARTNER_BURN",
    "PARTNER_REVERSE", "PARTNER_CONVERT_IN", "PARTNER_CONVERT_OUT",
]  # fmt: skip


def test_months_are_local_calendar_months() -> None:
    assert months_between(date(2025, 11, 15), date(2026, 2, 1)) == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert months_between(date(2026, 2, 1), date(2026, 1, 1)) == []
    assert local_midnight(date(2026, 2, 1), "Asia/Shanghai") == datetime(2026, 1, 31, 16, tzinfo=UTC)
    assert month_end("2026-12", "Asia/Shanghai") == datetime(2026, 12, 31, 16, tzinfo=UTC)
    assert month_end("2026-03", "America/New_York") == datetime(2026, 4, 1, 4, tzinfo=UTC)  # EDT


def test_sealing_keeps_a_margin_after_local_midnight() -> None:
    margin = timedelta(minutes=5)
    just_after = datetime(2026, 1, 31, 16, 2, tzinfo=UTC)  # Feb 1, 00:02 in Shanghai
    assert seal_boundary(just_after, "Asia/Shanghai", margin) == datetime(2026, 1, 30, 16, tzinfo=UTC)
    later = datetime(2026, 1, 31, 16, 6, tzinfo=UTC)
    assert seal_boundary(later, "Asia/Shanghai", margin) == datetime(2026, 1, 31, 16, tzinfo=UTC)


def test_growth_is_null_after_a_zero_month() -> None:
    assert growth(150, 100) == 0.5
    assert growth(0, 100) == -1.0
    assert growth(10, 0) is None


def test_health_advice_follows_the_thresholds() -> None:
    assert health(1000, 300).advice is Advice.MORE_REDEMPTION_CHANNELS
    assert health(1000, 500).advice is Advice.BALANCED
    assert health(1000, 1000).advice is Advice.BALANCED
    assert health(1000, 1001).advice is Advice.MORE_STOCK
    assert health(1000, 300, HealthThresholds(20, 80)).advice is Advice.BALANCED
    assert health(0, 0).redemption_rate is None and health(0, 0).advice is Advice.BALANCED
    assert health(0, 5).advice is Advice.MORE_STOCK


def test_cost_per_point_follows_seed_004() -> None:
    # ¥3,200 for 1,500 points: 213.333 fen a point; with ¥300 cash: 193.333.
    assert default_cost_per_point([CatalogCost(320_000, 0, 1500)], 100) == (213_333, "CATALOG")
    assert default_cost_per_point([CatalogCost(320_000, 30_000, 1500)], 100) == (193_333, "CATALOG")
    two = [CatalogCost(5_000, 0, 500), CatalogCost(20_000, 10_000, 500)]
    assert default_cost_per_point(two, 100) == (15_000, "CATALOG")
    assert default_cost_per_point([], 100) == (1_000, "DEDUCTION_RATE")  # 100 points = ¥1
    assert fen(3, 213_333) == 640 and fen(-3, 213_333) == -640 and fen(1, 500) == 1


def test_flows_classify_kinds() -> None:
    assert flows("REDEMPTION", Sums(spent_in=500)) == Flows(redeemed=500)
    assert flows("REDEMPTION_CANCEL", Sums(spent_out=500)) == Flows(redeemed=-500, returned=500)
    assert flows("ADJUSTMENT", Sums(spent_in=40)) == Flows(adjusted=40)
    assert flows("REFUND", Sums(earned_out=200)) == Flows(reversed=200)
    assert flows("EXPIRE", Sums(expired=70)) == Flows(expired=70)
    assert channel("REDEMPTION_CANCEL") == "GIFTS"
    assert channel("PARTNER_REVERSE", "PARTNER_BURN") == "PARTNER_BURN"
    assert channel("PARTNER_REVERSE", "PARTNER_ACCRUE") is None
    assert channel("GRANT") is None


deltas = st.fixed_dictionaries(
    {
        "available": st.integers(-10_000, 10_000),
        "pending": st.integers(-10_000, 10_000),
        "lifetimeEarned": st.integers(-10_000, 10_000),
        "spent": st.integers(-10_000, 10_000),
        "expired": st.integers(0, 10_000),
    }
)


@given(st.lists(st.tuples(st.sampled_from(KINDS), deltas), max_size=40))
def test_flows_of_balanced_entries_reconcile_with_what_members_hold(entries: list[tuple[str, dict[str, int]]]) -> None:
    """For entries whose deltas balance like the ledger's (held = earned − spent − expired),
    the flows account for every point held, and summing per kind equals summing per entry."""
    total = Flows()
    held = 0
    per_kind: dict[str, Sums] = {}
    for kind, d in entries:
        d = {**d, "available": d["lifetimeEarned"] - d["spent"] - d["expired"] - d["pending"]}
        held += d["available"] + d["pending"]
        total += entry_flows(kind, d)
        one = Sums(
            earned_in=max(d["lifetimeEarned"], 0),
            earned_out=max(-d["lifetimeEarned"], 0),
            spent_in=max(d["spent"], 0),
            spent_out=max(-d["spent"], 0),
            expired=d["expired"],
        )
        per_kind[kind] = per_kind.get(kind, Sums()) + one
    assert total.held_change == held
    assert sum((flows(k, s) for k, s in per_kind.items()), Flows()) == total
    assert total.issued >= 0 and total.reversed >= 0 and total.returned >= 0


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 1000), st.integers(-500, 500)), min_size=1, max_size=24))
def test_month_end_liability_is_the_running_sum(changes: list[tuple[int, int, int]]) -> None:
    keys = months_between(date(2024, 1, 1), date(2024, 1, 1) + timedelta(days=31 * (len(changes) - 1)))[: len(changes)]
    issued = {k: Flows(issued=i, redeemed=r) for k, (i, r, _) in zip(keys, changes, strict=False)}
    held = {k: (i - r, p) for k, (i, r, p) in zip(keys, changes, strict=False)}
    result = monthly(keys, issued, held, opening=(7, 3))
    running = 10
    for month, (i, r, p) in zip(result, changes, strict=False):
        running += i - r + p
        assert month.liability_points == running
        previous = issued.get(keys[keys.index(month.month) - 1]) if month.month != keys[0] else Flows()
        assert month.issued_growth == growth(i, previous.issued if previous else 0)


def test_breakage_counts_only_closed_cohorts() -> None:
    closed = Cohort("2025-01", issued=1000, expired=300, redeemed=600, reversed=100)
    open_ = Cohort("2025-06", issued=500, expired=0, redeemed=100)
    assert closed.closed and not open_.closed
    assert breakage_rate([closed, open_]) == pytest.approx(300 / 900)
    assert breakage_rate([open_]) is None


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n))))
def test_quintiles_cover_one_to_five_evenly(case: tuple[int, int]) -> None:
    count, rank = case
    score = quintile(rank, count)
    assert 1 <= score <= 5
    assert quintile(1, count) == 1
    if count >= 5:
        assert quintile(count, count) == 5
    if rank > 1:
        assert quintile(rank - 1, count) <= score


@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5))
def test_every_score_has_exactly_one_segment(r: int, f: int, m: int) -> None:
    assert isinstance(segment(r, f, m), Segment)


def test_segments_name_the_usual_groups() -> None:
    assert segment(5, 5, 5) is Segment.CHAMPIONS
    assert segment(3, 5, 1) is Segment.LOYAL
    assert segment(5, 1, 1) is Segment.NEW
    assert segment(4, 2, 2) is Segment.POTENTIAL_LOYALISTS
    assert segment(1, 4, 4) is Segment.AT_RISK
    assert segment(1, 1, 1) is Segment.LOST
    assert segment(2, 2, 3) is Segment.HIBERNATING
    assert segment(3, 2, 2) is Segment.NEEDS_ATTENTION


def test_ranges_are_validated() -> None:
    with pytest.raises(ValueError):
        Range(date(2026, 2, 1), date(2026, 1, 1), "Asia/Shanghai")
    with pytest.raises(ValueError):
        Range(date(2010, 1, 1), date(2026, 1, 1), "Asia/Shanghai")
    span = Range(date(2026, 1, 1), date(2026, 1, 31), "Asia/Shanghai")
    assert span.end_at - span.start_at == timedelta(days=31)


async def test_throttled_batches_lose_nothing_and_come_at_most_once_an_interval() -> None:
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    for i in range(50):
        queue.put_nowait(i)
    queue.put_nowait(None)

    async def source() -> AsyncIterator[int]:
        while (item := await queue.get()) is not None:
            yield item

    ticks = iter(range(0, 10_000, 1))  # a fake monotonic clock: each reading is 1 s later

    got = [batch async for batch in batches(source(), 3.0, monotonic=lambda: float(next(ticks)))]
    assert [i for batch in got for i in batch] == list(range(50))
    assert all(batch for batch in got)
    assert len(got) < 50  # gathered, not one event per item
