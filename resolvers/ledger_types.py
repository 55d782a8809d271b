"""Ledger entries as clients see them."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gateway.core.clock import as_utc
from gateway.core.errors import BadInput
from gateway.domain.ledger_view import LedgerFilter
from gateway.domain.member_search import InvalidFilter
from gateway.ledger import EntryKind as DomainEntryKind
from gateway.store.mongo import Document
from resolvers.balance_types import PointBalances
from resolvers.enums import graphql_enum

LedgerEntryKind = graphql_enum(DomainEntryKind, "LedgerEntryKind")


@strawberry.input(description="Which entries of a member's ledger: every field given narrows (AND).")
class LedgerFilterInput:
    kinds: list[LedgerEntryKind] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Any of these kinds."
    )
    source_type: str | None = strawberry.field(default=None, description="ORDER, RULE, OPERATOR, PARTNER...")
    source_id: str | None = strawberry.field(default=None, description="An order id, a redemption id, an event id...")
    partner_id: str | None = strawberry.field(default=None, description="Entries of this partner's operations.")
    since: datetime | None = strawberry.field(default=None, description="Written at or after.")
    until: datetime | None = strawberry.field(default=None, description="Written before.")

    def to_domain(self) -> LedgerFilter:
        try:
            return LedgerFilter.parse(
                kinds=[k.value for k in self.kinds or ()],  # type: ignore[attr-defined]
                source_type=self.source_type,
                source_id=self.source_id,
                partner_id=self.partner_id,
                since=self.since,
                until=self.until,
            )
        except InvalidFilter as exc:
            raise BadInput(str(exc), field=exc.field) from None


@strawberry.type(description="Where a ledger entry came from.")
class EntrySource:
    type: str = strawberry.field(description="ORDER, RULE, OPERATOR, PARTNER, REDEMPTION, LOT...")
    id: str
    partner_id: str | None


@strawberry.type(description="The exact change an entry made to each balance.")
class BalanceDelta:
    available: int
    pending: int
    lifetime_earned: int
    spent: int
    expired: int
    held: int


@strawberry.type(description="One immutable change to a member's points.")
class LedgerEntry:
    id: strawberry.ID
    member_id: str
    position: int = strawberry.field(description="Per-member sequence number, 1, 2, 3...; resume from it.")
    kind: LedgerEntryKind  # type: ignore[valid-type]
    points: int = strawberry.field(
        description="Net change to the points the member holds (available + pending + held)."
    )
    delta: BalanceDelta
    reason: str
    source: EntrySource
    idempotency_key: str | None
    created_at: datetime
    expires_at: datetime | None = strawberry.field(description="For earned points: when this lot expires.")
    available_at: datetime | None = strawberry.field(description="For earned points: when they become spendable.")
    shortfall: int = strawberry.field(description="Refunds: points that could not be taken back.")
    balances_after: PointBalances

    @classmethod
    def of(cls, doc: Document) -> LedgerEntry:
        change = doc["delta"]
        source = doc["source"]
        return cls(
            id=strawberry.ID(str(doc["_id"])),
            member_id=doc["memberId"],
            position=doc["seq"],
            kind=LedgerEntryKind(doc["kind"]),
            points=doc["points"],
            delta=BalanceDelta(
                available=change["available"],
                pending=change["pending"],
                lifetime_earned=change["lifetimeEarned"],
                spent=change["spent"],
                expired=change["expired"],
                held=change.get("held", 0),
            ),
            reason=doc["reason"],
            source=EntrySource(type=source["type"], id=source["id"], partner_id=source.get("partnerId")),
            idempotency_key=doc.get("idempotencyKey"),
            created_at=as_utc(doc["createdAt"]),
            expires_at=as_utc(doc["expiresAt"]) if doc.get("expiresAt") else None,
            available_at=as_utc(doc["availableAt"]) if doc.get("availableAt") else None,
            shortfall=doc.get("shortfall", 0),
            balances_after=PointBalances.of(doc["balancesAfter"]),
        )
