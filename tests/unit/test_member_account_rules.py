"""Account status and personal-data rules (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.member_merge import (
    filled_fields,
    later_term,
    merge_refusal,
    merged_tier,
    points_not_returned,
    unmerge_refusal,
)
from gateway.domain.member_status import (
    MemberStatus,
    StatusRefusal,
    freeze,
    points_refusal,
    status_of,
    unfreeze,
    valid_reason,
)
from gateway.domain.privacy import ERASED_NAME, erased_profile, erasure_refusal, export_document
from gateway.domain.program import DEFAULT_PROGRAM

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def test_members_without_a_status_are_active_and_may_move_points():
    assert status_of({}) is MemberStatus.ACTIVE
    assert points_refusal({"status": None}) is None
    assert points_refusal({"status": "FROZEN"}) == "MEMBER_FROZEN"
    assert points_refusal({"status": "CLOSED"}) == "MEMBER_CLOSED"


@pytest.mark.parametrize(
    ("change", "current", "outcome"),
    [
        (freeze, MemberStatus.ACTIVE, MemberStatus.FROZEN),
        (freeze, MemberStatus.FROZEN, "INVALID_STATE"),
        (freeze, MemberStatus.CLOSED, "MEMBER_CLOSED"),
        (unfreeze, MemberStatus.FROZEN, MemberStatus.ACTIVE),
        (unfreeze, MemberStatus.ACTIVE, "INVALID_STATE"),
        (unfreeze, MemberStatus.CLOSED, "MEMBER_CLOSED"),
    ],
)
def test_status_transitions(change, current, outcome):
    if isinstance(outcome, MemberStatus):
        assert change(current) is outcome
    else:
        with pytest.raises(StatusRefusal) as caught:
            change(current)
        assert caught.value.code == outcome


def test_a_reason_is_required_and_bounded():
    assert valid_reason("  chargeback  ") == "chargeback"
    for bad in ("", "   ", "x" * 501):
        with pytest.raises(ValueError):
            valid_reason(bad)


def test_erasure_blanks_contact_details_and_search_keys():
    fields = erased_profile(NOW)
    assert fields["displayName"] == ERASED_NAME
    assert fields["email"] is fields["phone"] is fields["birthday"] is None
    assert fields["search"] == {"name": [], "phone": None} and fields["erasedAt"] == NOW
    assert erasure_refusal(0, 0) is None
    assert "1 hold" in (erasure_refusal(1, 0) or "") and "2 order" in (erasure_refusal(0, 2) or "")


def test_the_export_is_plain_json_without_hidden_fields():
    class Oid:  # stands for an ObjectId: anything else is written as its string
        def __str__(self) -> str:
            return "65f0c0ffee"

    member = {"_id": "m1", "displayName": "Ann", "search": {"name": ["ann"]}, "registeredAt": NOW}
    document = export_document(
        member,
        {"ledger": [{"_id": Oid(), "createdAt": NOW, "points": 5}]},
        referred_members=2,
        exported_at=NOW,
        hidden_member_fields=("search",),
    )
    assert document["member"] == {"_id": "m1", "displayName": "Ann", "registeredAt": "2026-03-02T00:00:00+00:00"}
    assert document["ledger"] == [{"_id": "65f0c0ffee", "createdAt": "2026-03-02T00:00:00+00:00", "points": 5}]
    assert document["referredMembers"] == 2 and document["memberId"] == "m1"


def test_merge_refusals_name_the_side_to_fix():
    active = {"_id": "a"}
    other = {"_id": "b"}
    assert merge_refusal(active, other, source_holds=0) is None
    assert merge_refusal(active, {"_id": "a"}, source_holds=0)[0] == "BAD_USER_INPUT"
    assert merge_refusal({"_id": "a", "status": "FROZEN"}, other, source_holds=0)[0] == "MEMBER_FROZEN"
    assert merge_refusal(active, {"_id": "b", "status": "CLOSED"}, source_holds=0)[0] == "MEMBER_CLOSED"
    assert merge_refusal(active, {"_id": "b", "status": "MERGED"}, source_holds=0)[0] == "MEMBER_MERGED"
    assert merge_refusal(active, other, source_holds=2)[0] == "ACCOUNT_BUSY"
    assert unmerge_refusal(other, target_holds=0) is None
    assert unmerge_refusal({"status": "FROZEN"}, target_holds=0)[0] == "MEMBER_FROZEN"
    assert unmerge_refusal(other, target_holds=1)[0] == "ACCOUNT_BUSY"


def test_the_merged_account_keeps_the_best_tier_fills_blanks_and_the_later_term():
    tiers = DEFAULT_PROGRAM.tiers
    assert merged_tier("MEMBER", "SENIOR", 100, tiers) == "SENIOR"
    assert merged_tier("SENIOR", "MEMBER", 250_000, tiers) == "VIP"
    assert merged_tier("SUPREME_VIP", "MEMBER", 0, tiers) == "SUPREME_VIP"
    assert filled_fields({"email": "a@b.cn", "phone": None}, {"email": "x@y.cn", "phone": "138", "birthday": None}) == {
        "phone": "138"
    }
    early, late = {"endsAt": NOW}, {"endsAt": NOW.replace(year=2027)}
    assert later_term(early, late) is late and later_term(late, early) is late
    assert later_term(None, early) is early and later_term(early, None) is early


@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_what_an_undoing_cannot_return_is_never_negative(moved_in, returned):
    missing = points_not_returned(moved_in, returned)
    assert missing >= 0 and (missing == moved_in - returned or returned > moved_in)
