"""Coalition partners as clients see them: configuration, links, operations, statements."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gateway.core.clock import as_utc
from gateway.domain.exchange import Direction
from gateway.domain.partner_commands import OperationType
from gateway.domain.partner_links import LinkVia
from gateway.domain.partner_terms import reversal_window_of
from gateway.store.mongo import Document
from resolvers.enums import graphql_enum

PartnerOperationType = graphql_enum(OperationType, "PartnerOperationType", "A partner operation.")
ConversionDirection = graphql_enum(Direction, "ConversionDirection", "Which way a conversion goes.")
PartnerLinkVia = graphql_enum(
    LinkVia,
    "PartnerLinkVia",
    "How a link was made (CODE: the member's code, redeemed by the partner; ADMIN) or withdrawn.",
)


@strawberry.type(description="partnerPoints of the partner's own currency are worth coalitionPoints.")
class ExchangeRate:
    partner_points: int
    coalition_points: int


@strawberry.type(description="Accrual by purchase amount: points coalition points per perFen fen (rounded down).")
class AccrualRate:
    points: int
    per_fen: int


@strawberry.type(description="Conversion fee in coalition points: fixedPoints + basisPoints/10000 of the gross, up.")
class PartnerFee:
    basis_points: int
    fixed_points: int


@strawberry.type(description="Per-day limits in coalition points (program timezone); null is unlimited.")
class PartnerLimits:
    daily_accrue_points: int | None
    daily_burn_points: int | None
    daily_convert_points: int | None


@strawberry.type(description="A coalition partner merchant.")
class Partner:
    id: strawberry.ID
    name: str
    currency_name: str = strawberry.field(description="The partner's own points currency.")
    rate: ExchangeRate
    accrual_rate: AccrualRate
    fee: PartnerFee
    limits: PartnerLimits
    settlement_milli_fen_per_point: int = strawberry.field(
        description="Money per coalition point for settlement, in milli-fen (1/1000 fen): 1000 = 1 fen."
    )
    reversal_window_days: int = strawberry.field(
        description="Days after an operation during which the partner may reverse it (then REVERSAL_WINDOW_CLOSED)."
    )
    active: bool
    created_at: datetime
    updated_at: datetime
    key_rotated_at: datetime

    @classmethod
    def of(cls, doc: Document) -> Partner:
        limits = doc.get("limits") or {}
        return cls(
            id=strawberry.ID(doc["_id"]),
            name=doc["name"],
            currency_name=doc["currencyName"],
            rate=ExchangeRate(
                partner_points=doc["rate"]["partnerPoints"], coalition_points=doc["rate"]["coalitionPoints"]
            ),
            accrual_rate=AccrualRate(points=doc["accrualRate"]["points"], per_fen=doc["accrualRate"]["perFen"]),
            fee=PartnerFee(basis_points=doc["fee"]["basisPoints"], fixed_points=doc["fee"]["fixedPoints"]),
            limits=PartnerLimits(
                daily_accrue_points=limits.get("dailyAccruePoints"),
                daily_burn_points=limits.get("dailyBurnPoints"),
                daily_convert_points=limits.get("dailyConvertPoints"),
            ),
            settlement_milli_fen_per_point=doc["settlementMilliFenPerPoint"],
            reversal_window_days=reversal_window_of(doc),
            active=doc["active"],
            created_at=as_utc(doc["createdAt"]),
            updated_at=as_utc(doc["updatedAt"]),
            key_rotated_at=as_utc(doc["keyRotatedAt"]),
        )


@strawberry.type(description="Shown once: only a hash of the API key is stored.")
class PartnerCredentials:
    partner: Partner
    api_key: str = strawberry.field(description="Send as the X-Api-Key header.")
    signing_secret: str = strawberry.field(description="HMAC-SHA256 key for signing Kafka events.")


@strawberry.type(description="A member's account at a partner, linked with the member's consent.")
class PartnerAccount:
    partner_id: strawberry.ID
    partner_member_ref: str = strawberry.field(description="The partner's own id for this member.")
    linked_at: datetime
    linked_via: PartnerLinkVia | None = strawberry.field(  # type: ignore[valid-type]
        description="CODE or ADMIN; null for links made before links had to be proven."
    )

    @classmethod
    def of(cls, doc: Document) -> PartnerAccount:
        return cls(
            partner_id=strawberry.ID(doc["partnerId"]),
            partner_member_ref=doc["partnerMemberRef"],
            linked_at=as_utc(doc["linkedAt"]),
            linked_via=LinkVia(doc["linkedVia"]) if doc.get("linkedVia") else None,
        )


@strawberry.type(description="One partner operation as recorded, keyed by the partner's event id.")
class PartnerOperation:
    event_id: str
    type: PartnerOperationType  # type: ignore[valid-type]
    direction: ConversionDirection | None  # type: ignore[valid-type]
    member_id: str
    member_ref: str | None
    amount: int | None = strawberry.field(description="Accrual by amount: the purchase in fen.")
    points: int = strawberry.field(description="Coalition points moved (for conversions out, including the fee).")
    partner_points: int | None = strawberry.field(
        description="Conversions: partner points consumed (to coalition) or to credit (to partner)."
    )
    fee: int = strawberry.field(description="Conversion fee in coalition points.")
    remainder: int = strawberry.field(
        description="Conversions: points offered but not converted (less than one unit), in the offered currency."
    )
    shortfall: int = strawberry.field(description="Reversed accruals: points already spent that could not be taken.")
    reverses_event_id: str | None
    reversed_by: str | None = strawberry.field(description="Event id of the reversal, once reversed.")
    available_after: int = strawberry.field(description="The member's available coalition points right after.")
    settlement_milli_fen_per_point: int | None = strawberry.field(
        description="Money per point (milli-fen) this operation settles at: the partner's rate when it was made "
        "(a reversal: its original's). Null on operations made before rates were recorded."
    )
    occurred_at: datetime | None = strawberry.field(description="When it happened at the partner, as it reported.")
    created_at: datetime

    @classmethod
    def of(cls, doc: Document) -> PartnerOperation:
        return cls(
            event_id=doc["eventId"],
            type=PartnerOperationType(doc["type"]),
            direction=ConversionDirection(doc["direction"]) if doc.get("direction") else None,
            member_id=doc["memberId"],
            member_ref=doc.get("memberRef"),
            amount=doc.get("amount"),
            points=doc["points"],
            partner_points=doc.get("partnerPoints"),
            fee=doc.get("fee", 0),
            remainder=doc.get("remainder", 0),
            shortfall=doc.get("shortfall", 0),
            reverses_event_id=(doc.get("reverses") or {}).get("eventId"),
            reversed_by=doc.get("reversedBy"),
            available_after=doc["availableAfter"],
            settlement_milli_fen_per_point=doc.get("settlementMilliFenPerPoint"),
            occurred_at=as_utc(doc["occurredAt"]) if doc.get("occurredAt") else None,
            created_at=as_utc(doc["createdAt"]),
        )


@strawberry.type
class PartnerOperationResult:
    operation: PartnerOperation
    replayed: bool = strawberry.field(description="True when this event id was already applied; nothing changed.")
