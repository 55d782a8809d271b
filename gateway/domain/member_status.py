"""A member account's status (issue 14 §1): active, frozen by the operator, or closed by erasure.

- **FROZEN** (a suspected fraud, a dispute, a lost card): the member neither earns nor spends.
  Every earning move and every spending move of the ledger refuses with ``MEMBER_FROZEN``, so
  storefronts, partners (GraphQL and Kafka), check-ins, grants and campaigns all get the same
  answer. What still happens, because it is not the member earning or spending: points expire on
  their dates (a freeze does not extend validity), pending points become available when their
  return window closes, refunds take points back, cancelled orders and voided holds give points
  back, partner reversals apply. A freeze voids the member's holds in flight (two-phase checkout
  deductions) so nothing half-spent outlives it; orders already placed stay as they are for
  staff to ship or cancel.
- **CLOSED** (personal data erased on request, PIPL): as frozen, for good (``MEMBER_CLOSED``).
- **MERGED** (a duplicate registration merged into the account that survives): every points
  operation naming it is refused with ``MEMBER_MERGED`` and ``mergedInto`` (the survivor's id).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class MemberStatus(StrEnum):
    ACTIVE = "ACTIVE"
    FROZEN = "FROZEN"
    CLOSED = "CLOSED"
    MERGED = "MERGED"  # merged into another account (``mergedInto``); undone by an admin


REFUSAL_CODE = {
    MemberStatus.FROZEN: "MEMBER_FROZEN",
    MemberStatus.CLOSED: "MEMBER_CLOSED",
    MemberStatus.MERGED: "MEMBER_MERGED",
}
# What a caller is told when an earning or spending move is refused for the account's status.
REFUSAL_MESSAGE = {
    MemberStatus.FROZEN: "The member's account is frozen",
    MemberStatus.CLOSED: "The member's account is closed",
    MemberStatus.MERGED: "The member was merged into another account; use that one",
}
MAX_REASON = 500


def status_of(member: Mapping[str, Any]) -> MemberStatus:
    """The stored status; members written before statuses existed are active."""
    return MemberStatus(member.get("status") or MemberStatus.ACTIVE)


def points_refusal(member: Mapping[str, Any]) -> str | None:
    """The error code that refuses earning or spending for this member, or None when allowed."""
    return REFUSAL_CODE.get(status_of(member))


class StatusRefusal(ValueError):
    """A status change that is not allowed; ``code`` is the client's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def freeze(current: MemberStatus) -> MemberStatus:
    """ACTIVE → FROZEN; freezing a frozen member is refused (it would overwrite the first reason)."""
    if current is MemberStatus.ACTIVE:
        return MemberStatus.FROZEN
    if current is MemberStatus.FROZEN:
        raise StatusRefusal("INVALID_STATE", "The member is already frozen")
    return _gone(current)


def _gone(current: MemberStatus) -> MemberStatus:
    if current is MemberStatus.MERGED:
        raise StatusRefusal("MEMBER_MERGED", "The account was merged into another")
    raise StatusRefusal("MEMBER_CLOSED", "The account is closed")


def unfreeze(current: MemberStatus) -> MemberStatus:
    if current is MemberStatus.FROZEN:
        return MemberStatus.ACTIVE
    if current is MemberStatus.ACTIVE:
        raise StatusRefusal("INVALID_STATE", "The member is not frozen")
    return _gone(current)


def valid_reason(reason: str) -> str:
    """A freeze, unfreeze or erasure says why: 1 to 500 characters once trimmed."""
    cleaned = reason.strip()
    if not 1 <= len(cleaned) <= MAX_REASON:
        raise ValueError(f"reason must be 1 to {MAX_REASON} characters")
    return cleaned
