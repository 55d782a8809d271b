"""What a ledger entry says: its kind, why it was written, where it came from.

Every move of points (earn, spend, hold, post or void a hold, take back, restore)
is described by one ``Memo``: the entry's kind, a reason a person can read, its
source and any fields the feature records on the entry (``extra``), so the
ledger's moves take one value instead of four loose arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from gateway.store.mongo import Document


class EntryKind(StrEnum):
    PURCHASE = "PURCHASE"
    CHECK_IN = "CHECK_IN"
    REFERRAL = "REFERRAL"
    BEHAVIOUR = "BEHAVIOUR"
    GRANT = "GRANT"
    ADJUSTMENT = "ADJUSTMENT"
    RELEASE = "RELEASE"
    EXPIRE = "EXPIRE"
    REFUND = "REFUND"
    REFERRAL_REVOKED = "REFERRAL_REVOKED"
    DEDUCTION_HOLD = "DEDUCTION_HOLD"
    DEDUCTION = "DEDUCTION"
    DEDUCTION_VOID = "DEDUCTION_VOID"
    DEDUCTION_RETURN = "DEDUCTION_RETURN"
    REDEMPTION_HOLD = "REDEMPTION_HOLD"
    REDEMPTION = "REDEMPTION"
    REDEMPTION_VOID = "REDEMPTION_VOID"
    REDEMPTION_CANCEL = "REDEMPTION_CANCEL"
    PARTNER_ACCRUE = "PARTNER_ACCRUE"
    PARTNER_BURN = "PARTNER_BURN"
    PARTNER_REVERSE = "PARTNER_REVERSE"
    PARTNER_CONVERT_IN = "PARTNER_CONVERT_IN"
    PARTNER_CONVERT_OUT = "PARTNER_CONVERT_OUT"
    CAMPAIGN = "CAMPAIGN"  # a campaign's bonus on a purchase (features/campaigns.py)
    MERGE_OUT = "MERGE_OUT"  # points leaving an account merged into another, or back out at its undoing
    MERGE_IN = "MERGE_IN"  # the same points arriving on the other side (features/member_merge.py)


class LotState(StrEnum):
    PENDING = "PENDING"
    AVAILABLE = "AVAILABLE"


@dataclass(frozen=True)
class Source:
    """Where a change came from: an order, a rule, an operator, a partner, a redemption."""

    type: str
    id: str
    partner_id: str | None = None

    def document(self) -> Document:
        doc: Document = {"type": self.type, "id": self.id}
        if self.partner_id is not None:
            doc["partnerId"] = self.partner_id
        return doc


@dataclass(frozen=True)
class Memo:
    """Why an entry is written: its kind, a reason a person can read, its source, and the
    feature's own fields for the entry (``extra``: a gift id, an order amount...)."""

    kind: EntryKind
    reason: str
    source: Source
    extra: Mapping[str, Any] = field(default_factory=dict)

    def adding(self, **fields: Any) -> Memo:
        """The same memo with more fields on the entry (the memo's own win on a clash)."""
        return replace(self, extra={**fields, **self.extra})
