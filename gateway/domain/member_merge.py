"""Merging two accounts of one person (issue 14 §1): the rules, pure.

The **source** (the duplicate) is merged into the **target** (the account that survives), in one
transaction: the source's lots (pending and available, with their original expiry) and debt, its
orders, purchases, checkout deductions, partner operations, benefit usage and growth events move
to the target; the ledger records the points leaving the source (``MERGE_OUT``) and arriving on the
target (``MERGE_IN``). The source stays as a tombstone (``status MERGED``, ``mergedInto``): every
points operation naming it answers ``MEMBER_MERGED`` with the survivor's id.

What each side keeps or gains is decided here:

- **tier**: the higher of the two tiers held, and of the tier the combined value reaches
  (``merged_tier``): the person had earned it on one of their accounts;
- **lifetime spend, growth, purchase count**: added to the target (the purchases moved);
- **contact details**: the target keeps its own; a blank one (email, phone, birthday) is filled
  from the source (``filled_fields``), so a merge loses no way to reach the person;
- **paid membership**: the term that ends later wins;
- **partner links**: a partner linked only to the source moves to the target with the same
  customer ref; a partner linked on both sides keeps the target's link, and the source's ref is
  unlinked (recorded on the merge, put back by its undoing);
- **refused** (``merge_refusal``): the same account twice, either side frozen, closed or merged,
  or the source with points on hold (two-phase checkout or unpaid order: wait or cancel them).

**Undoing** (an admin, ``unmergeMembers``) moves back what came from the source and is still
there: the source's lots with what remains in them, its orders, purchases, deductions, partner
operations, usage and growth events, its partner links and its profile figures. Points the merged
account spent or let expire after the merge are not re-created: that account spent them, and its
ledger says so (``points_not_returned``). A restore of such a spend later gives the points back to
the account that spent them (gateway/ledger/posting.py). Refused while the target has points on
hold or is frozen or closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.domain.member_status import MemberStatus, status_of
from gateway.domain.program import Tier
from gateway.domain.tiers import tier_for, tier_rank

FILLED = ("email", "phone", "birthday")


def merge_refusal(source: Mapping[str, Any], target: Mapping[str, Any], *, source_holds: int) -> tuple[str, str] | None:
    """(error code, message) when these two accounts cannot be merged now, else None."""
    if source["_id"] == target["_id"]:
        return "BAD_USER_INPUT", "An account cannot be merged into itself"
    for side, member in (("source", source), ("target", target)):
        status = status_of(member)
        if status is MemberStatus.FROZEN:
            return "MEMBER_FROZEN", f"The {side} account is frozen; unfreeze it first"
        if status is MemberStatus.CLOSED:
            return "MEMBER_CLOSED", f"The {side} account is closed"
        if status is MemberStatus.MERGED:
            return "MEMBER_MERGED", f"The {side} account was already merged into another"
    if source_holds:
        return "ACCOUNT_BUSY", f"The source account has {source_holds} hold(s) in flight; settle them first"
    return None


def unmerge_refusal(target: Mapping[str, Any], *, target_holds: int) -> tuple[str, str] | None:
    status = status_of(target)
    if status is not MemberStatus.ACTIVE:
        return f"MEMBER_{status.value}", f"The account the merge went into is {status.value.lower()}"
    if target_holds:
        return "ACCOUNT_BUSY", f"The merged account has {target_holds} hold(s) in flight; settle them first"
    return None


def merged_tier(target_tier: str, source_tier: str, combined_value: int, tiers: tuple[Tier, ...]) -> str:
    """The highest of the two tiers held and the tier the combined value reaches."""
    candidates = [target_tier, source_tier, tier_for(combined_value, tiers).code]

    def rank(code: str) -> int:
        found = tier_rank(code, tiers)
        return -1 if found is None else found

    return max(candidates, key=rank)


def filled_fields(target: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, Any]:
    """Contact fields the target lacks and the source has."""
    return {name: source[name] for name in FILLED if not target.get(name) and source.get(name)}


def later_term(
    target_term: Mapping[str, Any] | None, source_term: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The paid-membership term that ends later (either may be missing)."""
    if not source_term:
        return target_term
    if not target_term:
        return source_term
    return source_term if source_term["endsAt"] > target_term["endsAt"] else target_term


def points_not_returned(moved_in: int, returned: int) -> int:
    """What the undoing cannot give back: spent or expired on the merged account meanwhile."""
    return max(moved_in - returned, 0)
