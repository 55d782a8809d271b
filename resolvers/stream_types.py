"""Event types that subscriptions deliver."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gateway.core.clock import as_utc
from gateway.store.mongo import Document
from resolvers.balance_types import PointBalances
from resolvers.ledger_types import LedgerEntry, LedgerEntryKind
from resolvers.shared_events import SharedEvent


def _time(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


@strawberry.type(description="A member's balances changed: the new balances and the ledger entry that caused it.")
class BalanceEvent(SharedEvent):
    member_id: str
    position: int = strawberry.field(
        description="The entry's per-member ledger position; reconnect with balanceChanged(after: position)."
    )
    balances: PointBalances
    entry: LedgerEntry

    @classmethod
    def of(cls, doc: Document) -> BalanceEvent:
        return cls(
            member_id=doc["memberId"],
            position=doc["seq"],
            balances=PointBalances.of(doc["balancesAfter"]),
            entry=LedgerEntry.of(doc),
        )


@strawberry.type(description="Program-wide points activity for dashboards: no member identity, no balances.")
class PointsActivity(SharedEvent):
    id: strawberry.ID = strawberry.field(description="The ledger entry id (unique; use it to de-duplicate).")
    kind: LedgerEntryKind  # type: ignore[valid-type]
    points: int
    available_delta: int
    pending_delta: int
    source_type: str
    partner_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, doc: Document) -> PointsActivity:
        return cls(
            id=strawberry.ID(str(doc["_id"])),
            kind=LedgerEntryKind(doc["kind"]),
            points=doc["points"],
            available_delta=doc["delta"]["available"],
            pending_delta=doc["delta"]["pending"],
            source_type=doc["source"]["type"],
            partner_id=doc["source"].get("partnerId"),
            created_at=as_utc(doc["createdAt"]),
        )


@strawberry.type(description="A member moved to another tier.")
class TierChangeEvent(SharedEvent):
    id: strawberry.ID
    member_id: str
    from_tier: str | None
    to_tier: str
    direction: str = strawberry.field(description="UP or DOWN.")
    reason: str | None
    at: datetime | None

    @classmethod
    def of(cls, doc: Document) -> TierChangeEvent:
        return cls(
            id=strawberry.ID(str(doc["_id"])),
            member_id=doc["memberId"],
            from_tier=doc.get("fromTier"),
            to_tier=doc["toTier"],
            direction=doc.get("direction", ""),
            reason=doc.get("reason"),
            at=_time(doc.get("at")),
        )


@strawberry.type(description="A redemption order was placed or changed status.")
class RedemptionEvent(SharedEvent):
    id: strawberry.ID
    member_id: str
    gift_id: str
    quantity: int
    points: int
    cash_paid: int = strawberry.field(description="Fen.")
    status: str = strawberry.field(description="PLACED, FULFILLED or CANCELLED.")
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, doc: Document) -> RedemptionEvent:
        return cls(
            id=strawberry.ID(str(doc["_id"])),
            member_id=doc["memberId"],
            gift_id=str(doc.get("giftId", "")),
            quantity=doc.get("quantity", 1),
            points=doc.get("points", 0),
            cash_paid=doc.get("cashPaid", 0),
            status=doc.get("status", ""),
            created_at=_time(doc.get("createdAt")),
            updated_at=_time(doc.get("updatedAt")),
        )


@strawberry.type(description="A gift's stock changed.")
class GiftStockEvent(SharedEvent):
    gift_id: str
    name: str | None
    stock: int
    sold_out: bool

    @classmethod
    def of(cls, doc: Document) -> GiftStockEvent:
        stock = int(doc.get("stock", 0))
        return cls(gift_id=str(doc["_id"]), name=doc.get("name"), stock=stock, sold_out=stock <= 0)
