"""Partner root fields: admin configuration, member links, partner operations, statements."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from gateway.core.auth import Principal, Role, require_principal, require_role
from gateway.core.clock import as_utc
from gateway.core.errors import Forbidden
from gateway.core.permissions import Permission, allows, require_permission
from gateway.domain.admin_audit import AuditAction
from gateway.domain.exchange import AccrualRate as DomainAccrualRate
from gateway.domain.exchange import Fee, Rate
from gateway.domain.partner_commands import OperationType, PartnerCommand
from gateway.domain.partner_terms import Limits, PartnerTerms
from gateway.features.partners import Partners
from resolvers.context import Info
from resolvers.partner_statement_types import PartnerStatement
from resolvers.partner_types import (
    ConversionDirection,
    Partner,
    PartnerCredentials,
    PartnerOperation,
    PartnerOperationResult,
)


@strawberry.input
class ExchangeRateInput:
    partner_points: int
    coalition_points: int


@strawberry.input
class AccrualRateInput:
    points: int
    per_fen: int


@strawberry.input
class PartnerLimitsInput:
    daily_accrue_points: int | None = None
    daily_burn_points: int | None = None
    daily_convert_points: int | None = None


@strawberry.input
class CreatePartnerInput:
    id: str | None = strawberry.field(default=None, description="Optional id; generated when omitted.")
    name: str
    currency_name: str
    rate: ExchangeRateInput
    accrual_rate: AccrualRateInput | None = None
    fee_basis_points: int = 0
    fee_fixed_points: int = 0
    limits: PartnerLimitsInput | None = None
    settlement_milli_fen_per_point: int = 0
    reversal_window_days: int = strawberry.field(
        default=90, description="Days after an operation during which the partner may reverse it."
    )
    active: bool = True


@strawberry.input(description="Only the fields given change; limits replace all three limits.")
class UpdatePartnerInput:
    name: str | None = None
    currency_name: str | None = None
    rate: ExchangeRateInput | None = None
    accrual_rate: AccrualRateInput | None = None
    fee_basis_points: int | None = None
    fee_fixed_points: int | None = None
    limits: PartnerLimitsInput | None = None
    settlement_milli_fen_per_point: int | None = strawberry.field(
        default=None, description="Applies to operations made from now on; earlier ones keep their recorded rate."
    )
    reversal_window_days: int | None = None
    active: bool | None = None


@strawberry.input(description="Coalition points for a purchase at the partner: give points, or amount in fen.")
class PartnerAccrueInput:
    event_id: str
    member_ref: str = strawberry.field(description="The member's partnerMemberRef, or the coalition member id.")
    points: int | None = None
    amount: int | None = None
    occurred_at: datetime | None = strawberry.field(default=None, description="When it happened at the partner.")


@strawberry.input
class PartnerBurnInput:
    event_id: str
    member_ref: str
    points: int
    occurred_at: datetime | None = strawberry.field(default=None, description="When it happened at the partner.")


@strawberry.input
class PartnerReverseInput:
    event_id: str = strawberry.field(description="This reversal's own event id.")
    original_event_id: str = strawberry.field(description="The event id of this partner's operation to undo.")
    member_ref: str | None = None
    occurred_at: datetime | None = strawberry.field(default=None, description="When it happened at the partner.")


@strawberry.input(
    description="PARTNER_TO_COALITION: points are partner points offered; COALITION_TO_PARTNER: coalition points."
)
class ConvertPartnerPointsInput:
    event_id: str
    member_ref: str
    direction: ConversionDirection  # type: ignore[valid-type]
    points: int
    occurred_at: datetime | None = strawberry.field(default=None, description="When it happened at the partner.")


def _terms(data: CreatePartnerInput | UpdatePartnerInput, current_fee: Fee | None = None) -> PartnerTerms:
    fee = None
    if data.fee_basis_points is not None or data.fee_fixed_points is not None:
        base = current_fee or Fee()
        fee = Fee(
            data.fee_basis_points if data.fee_basis_points is not None else base.basis_points,
            data.fee_fixed_points if data.fee_fixed_points is not None else base.fixed,
        )
    return PartnerTerms(
        name=data.name,
        currency_name=data.currency_name,
        rate=Rate(data.rate.partner_points, data.rate.coalition_points) if data.rate else None,
        accrual_rate=DomainAccrualRate(data.accrual_rate.points, data.accrual_rate.per_fen)
        if data.accrual_rate
        else None,
        fee=fee,
        limits=Limits(data.limits.daily_accrue_points, data.limits.daily_burn_points, data.limits.daily_convert_points)
        if data.limits
        else None,
        settlement_milli_fen_per_point=data.settlement_milli_fen_per_point,
        reversal_window_days=data.reversal_window_days,
        active=data.active,
    )


def _service(info: Info) -> Partners:
    return info.context.services.partners


def _partner_or_admin(principal: Principal | None, partner_id: str, *staff: Permission) -> Principal:
    """Staff holding one of ``staff`` see every partner; a partner sees only itself."""
    who = require_principal(principal)
    if who.role is Role.PARTNER and who.subject == partner_id:
        return who
    if staff and allows(who, *staff):
        return who
    raise Forbidden("Not allowed to access this partner")


async def _operate(info: Info, type: OperationType, input: object) -> PartnerOperationResult:
    """Every partner mutation: the calling partner applies the command its input carries."""
    who = require_role(info.context.principal, Role.PARTNER)
    command = PartnerCommand.from_request(type, input)
    op, replayed = await info.context.services.partner_operations.apply(who.subject, command, partner=who.partner)
    return PartnerOperationResult(operation=PartnerOperation.of(op), replayed=replayed)


@strawberry.type
class PartnerQuery:
    @strawberry.field(description="Every partner (admin).")
    async def partners(self, info: Info) -> list[Partner]:
        require_permission(info.context.principal, Permission.PARTNERS_MANAGE, Permission.STATEMENTS_READ)
        return [Partner.of(doc) for doc in await _service(info).all()]

    @strawberry.field(description="One partner: an admin, or the partner itself.")
    async def partner(self, info: Info, id: strawberry.ID) -> Partner:
        _partner_or_admin(info.context.principal, str(id), Permission.PARTNERS_MANAGE, Permission.STATEMENTS_READ)
        return Partner.of(await _service(info).get(str(id)))

    @strawberry.field(
        description="One operation by the partner's event id (did my event apply?): the partner itself, or an admin."
    )
    async def partner_operation(
        self, info: Info, event_id: str, partner_id: strawberry.ID | None = None
    ) -> PartnerOperation | None:
        who = require_principal(info.context.principal)
        owner = who.subject if who.role is Role.PARTNER else str(partner_id or "")
        _partner_or_admin(who, owner, Permission.PARTNERS_MANAGE)
        doc = await info.context.services.partner_operations.operation(owner, event_id)
        return PartnerOperation.of(doc) if doc else None

    @strawberry.field(description="Settlement for [from, to): an admin, or the partner itself.")
    async def partner_statement(
        self,
        info: Info,
        partner_id: strawberry.ID,
        period_from: Annotated[datetime, strawberry.argument(name="from")],
        period_to: Annotated[datetime, strawberry.argument(name="to")],
    ) -> PartnerStatement:
        _partner_or_admin(info.context.principal, str(partner_id), Permission.STATEMENTS_READ)
        statement = await info.context.services.partner_statements.statement(
            str(partner_id), as_utc(period_from), as_utc(period_to)
        )
        return PartnerStatement.of(statement)


@strawberry.type
class PartnerMutation:
    @strawberry.mutation(description="Admin: a new partner; its API key and signing secret are returned only now.")
    async def create_partner(self, info: Info, input: CreatePartnerInput) -> PartnerCredentials:
        who = require_permission(info.context.principal, Permission.PARTNERS_MANAGE)
        audit = info.context.services.admin_audit.recorder(who, AuditAction.PARTNER_CREATE, "partner")
        doc, api_key, secret = await _service(info).create(_terms(input), partner_id=input.id, audit=audit)
        return PartnerCredentials(partner=Partner.of(doc), api_key=api_key, signing_secret=secret)

    @strawberry.mutation(description="Admin: new API key and signing secret; the old ones stop working at once.")
    async def rotate_partner_key(self, info: Info, id: strawberry.ID) -> PartnerCredentials:
        who = require_permission(info.context.principal, Permission.PARTNERS_MANAGE)
        audit = info.context.services.admin_audit.recorder(who, AuditAction.PARTNER_KEY_ROTATE, "partner")
        doc, api_key, secret = await _service(info).rotate_key(str(id), audit=audit)
        return PartnerCredentials(partner=Partner.of(doc), api_key=api_key, signing_secret=secret)

    @strawberry.mutation(description="Admin: change rate, fee, limits, settlement value or active flag.")
    async def update_partner(self, info: Info, id: strawberry.ID, input: UpdatePartnerInput) -> Partner:
        who = require_permission(info.context.principal, Permission.PARTNERS_MANAGE)
        service = _service(info)
        current = await service.get(str(id))
        fee = current.get("fee") or {}
        terms = _terms(input, Fee(fee.get("basisPoints", 0), fee.get("fixedPoints", 0)))
        audit = info.context.services.admin_audit.recorder(who, AuditAction.PARTNER_UPDATE, "partner")
        return Partner.of(await service.update(str(id), terms, audit=audit))

    @strawberry.mutation(description="Partner (X-Api-Key): coalition points for a purchase at the partner.")
    async def partner_accrue(self, info: Info, input: PartnerAccrueInput) -> PartnerOperationResult:
        return await _operate(info, OperationType.ACCRUE, input)

    @strawberry.mutation(description="Partner (X-Api-Key): redeem a linked member's coalition points at the partner.")
    async def partner_burn(self, info: Info, input: PartnerBurnInput) -> PartnerOperationResult:
        return await _operate(info, OperationType.BURN, input)

    @strawberry.mutation(description="Partner (X-Api-Key): undo one of its own operations by its event id.")
    async def partner_reverse(self, info: Info, input: PartnerReverseInput) -> PartnerOperationResult:
        return await _operate(info, OperationType.REVERSE, input)

    @strawberry.mutation(description="Partner (X-Api-Key): convert between its points and coalition points.")
    async def convert_partner_points(self, info: Info, input: ConvertPartnerPointsInput) -> PartnerOperationResult:
        return await _operate(info, OperationType.CONVERT, input)
