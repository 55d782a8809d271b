"""Pure rules of paid-membership terms: plans, calendar months, renewal and lapse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.membership import Plan, add_months, end_now, legacy_term, renew, start

TZ = "Asia/Shanghai"
JAN_31 = datetime(2026, 1, 30, 16, 0, tzinfo=UTC)  # 31 Jan 00:00 in Shanghai


def local(instant: datetime) -> str:
    return instant.astimezone(__import__("zoneinfo").ZoneInfo(TZ)).strftime("%Y-%m-%d %H:%M")


def test_plans_run_whole_local_calendar_months():
    assert local(start(Plan.MONTHLY, JAN_31, TZ).ends_at) == "2026-02-28 00:00"
    assert local(start(Plan.QUARTERLY, JAN_31, TZ).ends_at) == "2026-04-30 00:00"
    assert local(start(Plan.YEARLY, JAN_31, TZ).ends_at) == "2027-01-31 00:00"
    leap = datetime(2028, 2, 28, 16, 0, tzinfo=UTC)  # 29 Feb 2028 local
    assert local(add_months(leap, 12, TZ)) == "2029-02-28 00:00"


def test_renewal_while_running_extends_from_the_end_without_drift():
    term = start(Plan.MONTHLY, JAN_31, TZ)
    for expected in ("2026-03-31 00:00", "2026-04-30 00:00", "2026-05-31 00:00"):
        term = renew(term, Plan.MONTHLY, JAN_31 + timedelta(days=20), TZ)
        assert local(term.ends_at) == expected
    assert term.starts_at == JAN_31 and term.months == 4
    yearly = renew(term, Plan.YEARLY, JAN_31 + timedelta(days=20), TZ)
    assert local(yearly.ends_at) == "2027-05-31 00:00" and yearly.plan is Plan.YEARLY


def test_renewal_after_the_end_starts_a_new_term():
    term = start(Plan.MONTHLY, JAN_31, TZ)
    later = term.ends_at + timedelta(days=3)
    again = renew(term, Plan.QUARTERLY, later, TZ)
    assert again.starts_at == later and again.months == 3
    assert not term.active_at(term.ends_at) and term.active_at(JAN_31) and not term.active_at(JAN_31 - timedelta(1))


def test_ending_early_and_legacy_flags():
    term = start(Plan.YEARLY, JAN_31, TZ)
    ended = end_now(term, JAN_31 + timedelta(days=10))
    assert ended.ends_at == JAN_31 + timedelta(days=10) and not ended.active_at(ended.ends_at)
    assert end_now(ended, JAN_31 + timedelta(days=20)) == ended
    old = legacy_term(JAN_31, JAN_31 + timedelta(days=400), TZ)
    assert old.plan is Plan.YEARLY and not old.active_at(JAN_31 + timedelta(days=400))


@given(
    plans=st.lists(st.sampled_from(list(Plan)), min_size=1, max_size=12),
    gaps=st.lists(st.integers(0, 500), min_size=12, max_size=12),
)
def test_renewal_never_shortens_and_always_covers_the_renewal_instant(plans, gaps):
    now = JAN_31
    term = None
    for plan, gap in zip(plans, gaps, strict=False):
        now += timedelta(days=gap)
        renewed = renew(term, plan, now, TZ)
        assert renewed.active_at(now)
        assert renewed.ends_at > now
        if term is not None and term.active_at(now):
            assert renewed.ends_at > term.ends_at and renewed.starts_at == term.starts_at
        term = renewed
