"""Segment grant jobs: the pure rules (status after the snapshot, the two-person rule, progress)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain import segment_grants as rules
from gateway.domain.segment_grants import JobStatus


def test_requests_are_bounded():
    assert rules.request_problem(1, "thanks") is None
    assert rules.request_problem(0, "thanks").field == "points"  # type: ignore[union-attr]
    assert rules.request_problem(rules.MAX_POINTS + 1, "thanks").field == "points"  # type: ignore[union-attr]
    assert rules.request_problem(5, "  ").field == "reason"  # type: ignore[union-attr]


def test_after_the_snapshot_empty_completes_large_waits_others_run():
    assert rules.after_snapshot(0, 50, 100) is JobStatus.COMPLETED
    assert rules.after_snapshot(2, 50, 100) is JobStatus.RUNNING  # exactly the threshold: no approval
    assert rules.after_snapshot(3, 50, 100) is JobStatus.AWAITING_APPROVAL


def test_only_unfinished_jobs_can_be_cancelled():
    assert {s for s in JobStatus if rules.can_cancel(s)} == {
        JobStatus.PREPARING,
        JobStatus.AWAITING_APPROVAL,
        JobStatus.RUNNING,
    }


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, rules.MAX_POINTS))
def test_progress_adds_up(total, granted, skipped, points):
    counts = {"GRANTED": granted, "SKIPPED": skipped}
    if granted + skipped > total:
        with pytest.raises(ValueError):
            rules.progress(total, counts, points)
        return
    progress = rules.progress(total, counts, points)
    assert progress.granted + progress.skipped + progress.pending == total
    assert 0 <= progress.percent <= 100 and (progress.percent == 100) == (progress.pending == 0)
    assert progress.points_granted == granted * points


def test_a_target_is_one_per_job_and_member():
    assert rules.target_id("j1", "m1") == "j1:m1" != rules.target_id("j2", "m1")
