"""Hand grants under control: support's limits and the two-person rule.

A grant moves ``|points| × members`` points (its *size*; a take-back counts like a gift: both
change balances by hand). Two controls apply:

- **Support's limits.** A caller who may adjust points but may not approve grants (``support``)
  moves at most ``per_grant`` points in one grant and ``per_day`` points in one local day (the
  program's time zone). Above either the grant is refused (``GRANT_LIMIT_EXCEEDED``) and nothing
  moves. Grants that went through approval do not count against the requester's day: a second
  person checked them.
- **The two-person rule.** A grant larger than ``approval_threshold`` does not post. It becomes a
  pending *grant request* that a second person holding ``grants:approve`` (never the requester)
  approves, which posts it exactly once, or rejects. A request not decided within ``ttl``
  expires and can no longer be approved.

Everything here is a plain function of its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

MAX_GRANT_MEMBERS = 100
MAX_GRANT_POINTS = 10_000_000
MAX_REASON = 200


@dataclass(frozen=True)
class GrantPolicy:
    per_grant: int  # support: the largest grant size, in points
    per_day: int  # support: the points one agent may move by hand in one local day
    approval_threshold: int  # a grant larger than this needs a second approver
    ttl: timedelta  # how long a grant request waits for its decision

    def __post_init__(self) -> None:
        if self.per_grant < 0 or self.per_day < 0 or self.approval_threshold < 0:
            raise ValueError("grant limits are not negative")
        if self.ttl <= timedelta(0):
            raise ValueError("a grant request must live for some time")


class GrantInvalid(ValueError):
    """A grant's input is malformed; ``field`` names the input to blame."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class GrantAsk:
    """A validated hand grant: distinct members, non-zero points, a trimmed reason."""

    member_ids: tuple[str, ...]
    points: int
    reason: str

    @classmethod
    def parse(cls, member_ids: list[str], points: int, reason: str) -> GrantAsk:
        ids = tuple(dict.fromkeys(member_ids))
        if not 1 <= len(ids) <= MAX_GRANT_MEMBERS:
            raise GrantInvalid(f"grant to 1 to {MAX_GRANT_MEMBERS} members at once", "memberIds")
        if points == 0 or abs(points) > MAX_GRANT_POINTS:
            raise GrantInvalid(f"points must be non-zero and at most {MAX_GRANT_POINTS} either way", "points")
        reason = reason.strip()
        if not 1 <= len(reason) <= MAX_REASON:
            raise GrantInvalid(f"reason must be 1 to {MAX_REASON} characters", "reason")
        return cls(ids, points, reason)

    @property
    def size(self) -> int:
        return grant_size(self.points, len(self.member_ids))


def grant_size(points: int, members: int) -> int:
    """The points a grant moves by hand, whichever way: ``|points| × members``."""
    return abs(points) * members


class LimitExceeded(StrEnum):
    PER_GRANT = "PER_GRANT"
    PER_DAY = "PER_DAY"


def limit_exceeded(policy: GrantPolicy, *, limited: bool, size: int, used_today: int) -> LimitExceeded | None:
    """Which of support's limits a grant of ``size`` would pass (None: within them, or not limited)."""
    if not limited:
        return None
    if size > policy.per_grant:
        return LimitExceeded.PER_GRANT
    if used_today + size > policy.per_day:
        return LimitExceeded.PER_DAY
    return None


def needs_approval(policy: GrantPolicy, size: int) -> bool:
    return size > policy.approval_threshold


class RequestStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


def status_at(stored: RequestStatus, expires_at: datetime, now: datetime) -> RequestStatus:
    """A pending request past its deadline is expired, whether or not anything wrote that down."""
    if stored is RequestStatus.PENDING and now >= expires_at:
        return RequestStatus.EXPIRED
    return stored


def expiry(requested_at: datetime, policy: GrantPolicy) -> datetime:
    return requested_at + policy.ttl


class ReviewRefusal(StrEnum):
    SECOND_APPROVER_REQUIRED = "SECOND_APPROVER_REQUIRED"  # the requester reviews their own request
    GRANT_REQUEST_NOT_PENDING = "GRANT_REQUEST_NOT_PENDING"  # already approved or rejected
    GRANT_REQUEST_EXPIRED = "GRANT_REQUEST_EXPIRED"


def review_refusal(
    *,
    stored: RequestStatus,
    expires_at: datetime,
    requested_by: str,
    reviewer: str,
    approve: bool,
    now: datetime,
) -> ReviewRefusal | None:
    """Why ``reviewer`` may not decide the request now (None: they may).

    A decided request stays decided; an expired one can be neither approved nor rejected (it is
    already closed). The requester may not approve their own request; rejecting it (withdrawing)
    is allowed, since it moves nothing.
    """
    status = status_at(stored, expires_at, now)
    if status is RequestStatus.EXPIRED:
        return ReviewRefusal.GRANT_REQUEST_EXPIRED
    if status is not RequestStatus.PENDING:
        return ReviewRefusal.GRANT_REQUEST_NOT_PENDING
    if approve and reviewer == requested_by:
        return ReviewRefusal.SECOND_APPROVER_REQUIRED
    return None
