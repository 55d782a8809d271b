"""Account status and personal-data rules (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

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
