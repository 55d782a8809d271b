"""Pure notification rules: which reminder is due, their identities, signatures and backoff."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.notifications import (
    ExpiringGroup,
    Reason,
    due_reminders,
    retry_delay,
    signature,
    verify,
)

EXPIRES = datetime(2027, 3, 2, 16, tzinfo=UTC)  # 2027-03-03 00:00 in Asia/Shanghai
GROUP = ExpiringGroup(member_id="ann", expires_on=date(2027, 3, 3), expires_at=EXPIRES, points=300)


def test_a_reminder_is_due_from_its_threshold_until_expiry() -> None:
    days = (30, 7, 1)
    assert due_reminders([GROUP], EXPIRES - timedelta(days=31), days, annual_clearing=False) == []
    [thirty] = due_reminders([GROUP], EXPIRES - timedelta(days=30), days, annual_clearing=False)
    assert (thirty.days_before, thirty.reason, thirty.points) == (30, Reason.POINTS_EXPIRING, 300)
    assert thirty.id == "POINTS_EXPIRING:ann:2027-03-03:30d"
    [seven] = due_reminders([GROUP], EXPIRES - timedelta(days=6), days, annual_clearing=False)
    assert seven.days_before == 7 and seven.superseded_ids(days) == ["POINTS_EXPIRING:ann:2027-03-03:30d"]
    assert due_reminders([GROUP], EXPIRES, days, annual_clearing=False) == []


def test_under_annual_clearing_the_reason_says_so() -> None:
    [reminder] = due_reminders([GROUP], EXPIRES - timedelta(days=2), (7,), annual_clearing=True)
    assert reminder.reason is Reason.ANNUAL_CLEARING and reminder.id.startswith("ANNUAL_CLEARING:ann:")


def test_nothing_to_lose_is_no_reminder() -> None:
    empty = ExpiringGroup(member_id="ann", expires_on=date(2027, 3, 3), expires_at=EXPIRES, points=0)
    assert due_reminders([empty], EXPIRES - timedelta(days=1), (7,), annual_clearing=False) == []


@given(
    thresholds=st.sets(st.integers(min_value=1, max_value=365), min_size=1, max_size=5),
    before=st.integers(min_value=0, max_value=400 * 24 * 3600),
)
def test_at_most_one_reminder_per_group_and_it_is_the_most_urgent_crossed(thresholds: set[int], before: int) -> None:
    days = tuple(sorted(thresholds, reverse=True))
    now = EXPIRES - timedelta(seconds=before)
    due = due_reminders([GROUP], now, days, annual_clearing=False)
    crossed = [n for n in days if EXPIRES - timedelta(days=n) <= now < EXPIRES]
    if not crossed:
        assert due == []
        return
    [reminder] = due
    assert reminder.days_before == min(crossed)
    # what it supersedes plus itself names every threshold at or above it, each exactly once
    names = [*reminder.superseded_ids(days), reminder.id]
    assert len(set(names)) == len([n for n in days if n >= reminder.days_before])


def test_a_signature_verifies_only_for_the_same_secret_body_and_a_fresh_timestamp() -> None:
    body = b'{"id":"x"}'
    header = signature("s3cret", 1_800_000_000, body)
    assert header.startswith("v1=")
    assert verify("s3cret", 1_800_000_000, body, header, now=1_800_000_100)
    assert not verify("other", 1_800_000_000, body, header, now=1_800_000_100)
    assert not verify("s3cret", 1_800_000_000, body + b" ", header, now=1_800_000_100)
    assert not verify("s3cret", 1_800_000_000, body, header, now=1_800_000_000 + 301)  # replayed later


def test_backoff_doubles_from_thirty_seconds_up_to_six_hours() -> None:
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_delay(20) == timedelta(hours=6)
    with pytest.raises(ValueError):
        retry_delay(0)
