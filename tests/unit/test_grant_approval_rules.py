"""Support's limits and the two-person rule, as plain functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.grant_approval import (
    MAX_GRANT_MEMBERS,
    GrantAsk,
    GrantInvalid,
    GrantPolicy,
    LimitExceeded,
    RequestStatus,
    ReviewRefusal,
    expiry,
    grant_size,
    limit_exceeded,
    needs_approval,
    review_refusal,
    status_at,
)

POLICY = GrantPolicy(per_grant=1_000, per_day=10_000, approval_threshold=100_000, ttl=timedelta(hours=72))
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_a_grant_is_validated_and_its_members_counted_once() -> None:
    ask = GrantAsk.parse(["a", "b", "a"], -300, "  correction ")
    assert ask.member_ids == ("a", "b") and ask.reason == "correction"
    assert ask.size == 600
    for members, points, reason, field in [
        ([], 5, "x", "memberIds"),
        ([f"m{n}" for n in range(MAX_GRANT_MEMBERS + 1)], 5, "x", "memberIds"),
        (["a"], 0, "x", "points"),
        (["a"], 10_000_001, "x", "points"),
        (["a"], 5, "   ", "reason"),
        (["a"], 5, "x" * 201, "reason"),
    ]:
        with pytest.raises(GrantInvalid) as raised:
            GrantAsk.parse(members, points, reason)
        assert raised.value.field == field


@given(st.integers(-10_000_000, 10_000_000).filter(bool), st.integers(1, 100))
def test_size_is_the_points_moved_either_way(points: int, members: int) -> None:
    assert grant_size(points, members) == grant_size(-points, members) == abs(points) * members > 0


@given(st.integers(0, 30_000), st.integers(1, 30_000))
def test_support_stays_within_both_limits_and_an_admin_is_not_limited(used: int, size: int) -> None:
    verdict = limit_exceeded(POLICY, limited=True, size=size, used_today=used)
    assert (verdict is None) == (size <= POLICY.per_grant and used + size <= POLICY.per_day)
    if size > POLICY.per_grant:
        assert verdict is LimitExceeded.PER_GRANT
    assert limit_exceeded(POLICY, limited=False, size=size, used_today=used) is None


def test_limits_at_the_boundary() -> None:
    assert limit_exceeded(POLICY, limited=True, size=1_000, used_today=9_000) is None
    assert limit_exceeded(POLICY, limited=True, size=1_000, used_today=9_001) is LimitExceeded.PER_DAY
    assert limit_exceeded(POLICY, limited=True, size=1_001, used_today=0) is LimitExceeded.PER_GRANT
    assert not needs_approval(POLICY, 100_000)
    assert needs_approval(POLICY, 100_001)


def test_a_policy_is_sane() -> None:
    with pytest.raises(ValueError):
        GrantPolicy(per_grant=-1, per_day=0, approval_threshold=0, ttl=timedelta(hours=1))
    with pytest.raises(ValueError):
        GrantPolicy(per_grant=0, per_day=0, approval_threshold=0, ttl=timedelta(0))


def test_a_pending_request_expires_at_its_deadline() -> None:
    deadline = expiry(NOW, POLICY)
    assert deadline == NOW + timedelta(hours=72)
    assert status_at(RequestStatus.PENDING, deadline, deadline - timedelta(microseconds=1)) is RequestStatus.PENDING
    assert status_at(RequestStatus.PENDING, deadline, deadline) is RequestStatus.EXPIRED
    assert status_at(RequestStatus.APPROVED, deadline, deadline + timedelta(days=9)) is RequestStatus.APPROVED


@pytest.mark.parametrize(
    ("stored", "reviewer", "approve", "at", "refusal"),
    [
        (RequestStatus.PENDING, "admin-2", True, NOW, None),
        (RequestStatus.PENDING, "admin-1", True, NOW, ReviewRefusal.SECOND_APPROVER_REQUIRED),
        (RequestStatus.PENDING, "admin-1", False, NOW, None),  # the requester withdraws
        (RequestStatus.APPROVED, "admin-2", True, NOW, ReviewRefusal.GRANT_REQUEST_NOT_PENDING),
        (RequestStatus.REJECTED, "admin-2", False, NOW, ReviewRefusal.GRANT_REQUEST_NOT_PENDING),
        (RequestStatus.PENDING, "admin-2", True, NOW + timedelta(hours=72), ReviewRefusal.GRANT_REQUEST_EXPIRED),
        (RequestStatus.PENDING, "admin-1", False, NOW + timedelta(hours=80), ReviewRefusal.GRANT_REQUEST_EXPIRED),
    ],
)
def test_who_may_decide_a_request(
    stored: RequestStatus, reviewer: str, approve: bool, at: datetime, refusal: ReviewRefusal | None
) -> None:
    verdict = review_refusal(
        stored=stored,
        expires_at=expiry(NOW, POLICY),
        requested_by="admin-1",
        reviewer=reviewer,
        approve=approve,
        now=at,
    )
    assert verdict == refusal
