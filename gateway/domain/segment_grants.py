"""Segment grants: points to every member of a segment, as a resumable job (docs/campaigns.md).

A job moves through:

    PREPARING ──(snapshot taken)──> RUNNING ──(no member left)──> COMPLETED
                           └──> AWAITING_APPROVAL ──(approved by a second person)──> RUNNING
    any of them ──(cancelled: by its managers, or by an approver who refuses it)──> CANCELLED

The snapshot fixes who is granted: the members matching the filter who had registered when the
job was created (a member who joins or enters the segment later is not added; one who leaves
it while the job runs is still granted: the job grants what was previewed and approved). Each
member is a *target* that is granted exactly once (GRANTED) or skipped with a reason (SKIPPED:
frozen, erased, gone). Everything here is a plain function of its arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

MAX_POINTS = 100_000  # per member: a segment grant is a gift, not a migration
MAX_REASON = 200


class JobStatus(StrEnum):
    PREPARING = "PREPARING"  # taking the snapshot of the segment
    AWAITING_APPROVAL = "AWAITING_APPROVAL"  # above the two-person threshold: a second person approves
    RUNNING = "RUNNING"  # granting, member by member
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class TargetStatus(StrEnum):
    PENDING = "PENDING"
    GRANTED = "GRANTED"
    SKIPPED = "SKIPPED"


ACTIVE = frozenset({JobStatus.PREPARING, JobStatus.AWAITING_APPROVAL, JobStatus.RUNNING})


class GrantJobProblem(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def request_problem(points: int, reason: str) -> GrantJobProblem | None:
    if not 1 <= points <= MAX_POINTS:
        return GrantJobProblem(f"points must be from 1 to {MAX_POINTS:,} per member", "points")
    if not 1 <= len(reason.strip()) <= MAX_REASON:
        return GrantJobProblem(f"reason must be 1 to {MAX_REASON} characters", "reason")
    return None


def total_points(members: int, points: int) -> int:
    return members * points


def needs_approval(members: int, points: int, threshold: int) -> bool:
    """The two-person rule: a job moving more than ``threshold`` points in all waits for a second person."""
    return total_points(members, points) > threshold


def after_snapshot(members: int, points: int, threshold: int) -> JobStatus:
    if members == 0:
        return JobStatus.COMPLETED
    if needs_approval(members, points, threshold):
        return JobStatus.AWAITING_APPROVAL
    return JobStatus.RUNNING


def can_cancel(status: JobStatus) -> bool:
    return status in ACTIVE


@dataclass(frozen=True)
class Progress:
    total: int
    granted: int
    skipped: int
    points_granted: int

    @property
    def pending(self) -> int:
        return self.total - self.granted - self.skipped

    @property
    def done(self) -> int:
        return self.granted + self.skipped

    @property
    def percent(self) -> int:
        """Whole percent of the targets done (100 only when none is left)."""
        if self.total == 0:
            return 100
        return self.done * 100 // self.total


def progress(total: int, counts: Mapping[str, int], points: int) -> Progress:
    granted = counts.get(TargetStatus.GRANTED, 0)
    skipped = counts.get(TargetStatus.SKIPPED, 0)
    if granted + skipped > total or min(granted, skipped, total) < 0:
        raise ValueError("more targets done than the snapshot holds")
    return Progress(total=total, granted=granted, skipped=skipped, points_granted=granted * points)


def target_id(job_id: str, member_id: str) -> str:
    """One target per job and member: the id itself makes a second snapshot of a member a no-op."""
    return f"{job_id}:{member_id}"
