"""A partner's settlement statement for a period, with its operations (``partnerStatement``)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gateway.core.clock import as_utc
from gateway.core.errors import BadInput
from gateway.domain.settlement import SettlementTotals
from gateway.features.partner_statements import Statement
from resolvers.context import Info
from resolvers.pagination import Connection, connection, decode_cursor, page_size
from resolvers.partner_types import Partner, PartnerOperation


@strawberry.type(description="A statement's points made at one recorded money-per-point rate.")
class PartnerStatementRate:
    milli_fen_per_point: int
    funded_by_partner_points: int
    owed_to_partner_points: int
    funded_by_partner_milli_fen: int
    owed_to_partner_milli_fen: int

    @classmethod
    def of(cls, rate: int, totals: SettlementTotals) -> PartnerStatementRate:
        return cls(
            milli_fen_per_point=rate,
            funded_by_partner_points=totals.funded_by_partner,
            owed_to_partner_points=totals.owed_to_partner,
            funded_by_partner_milli_fen=totals.funded_by_partner * rate,
            owed_to_partner_milli_fen=totals.owed_to_partner * rate,
        )


@strawberry.type
class PartnerStatement:
    """Settlement for one partner and period [from, to), reconciled to the ledger."""

    partner: Partner
    period_from: datetime = strawberry.field(name="from")
    period_to: datetime = strawberry.field(name="to")
    accrued_points: int
    accrual_reversed_points: int
    burned_points: int
    burn_reversed_points: int
    converted_in_points: int = strawberry.field(description="Coalition points credited by conversions in.")
    converted_out_points: int = strawberry.field(description="Coalition points converted to partner points.")
    conversion_reversed_in_points: int
    conversion_reversed_out_points: int
    fee_points: int = strawberry.field(description="Conversion fees kept by the program (net of reversals).")
    funded_by_partner_points: int = strawberry.field(description="Accrued + converted in, less reversals.")
    owed_to_partner_points: int = strawberry.field(description="Burned + converted out, less reversals.")
    net_points: int = strawberry.field(description="owed − funded: positive, the program pays the partner.")
    funded_by_partner_milli_fen: int = strawberry.field(
        description="Exact: each operation's points × the rate recorded on it, summed."
    )
    owed_to_partner_milli_fen: int
    net_milli_fen: int = strawberry.field(description="owedToPartnerMilliFen − fundedByPartnerMilliFen, exact.")
    funded_by_partner_fen: int = strawberry.field(
        description="fundedByPartnerMilliFen rounded once, half away from zero."
    )
    owed_to_partner_fen: int = strawberry.field(description="owedToPartnerMilliFen rounded once, half away from zero.")
    net_fen: int = strawberry.field(
        description="owedToPartnerFen − fundedByPartnerFen exactly (not a third rounding of netMilliFen)."
    )
    by_rate: list[PartnerStatementRate] = strawberry.field(
        description="The period's points by the money-per-point rate recorded on each operation, lowest rate first."
    )
    operation_count: int
    reconciled: bool = strawberry.field(description="The operations log and the ledger agree on every total.")
    partner_id: strawberry.Private[str]

    @classmethod
    def of(cls, st: Statement) -> PartnerStatement:
        t, money = st.totals, st.money
        return cls(
            partner=Partner.of(st.partner),
            period_from=as_utc(st.start),
            period_to=as_utc(st.end),
            accrued_points=t.accrued,
            accrual_reversed_points=t.accrual_reversed,
            burned_points=t.burned,
            burn_reversed_points=t.burn_reversed,
            converted_in_points=t.converted_in,
            converted_out_points=t.converted_out,
            conversion_reversed_in_points=t.conversion_reversed_in,
            conversion_reversed_out_points=t.conversion_reversed_out,
            fee_points=t.fees,
            funded_by_partner_points=t.funded_by_partner,
            owed_to_partner_points=t.owed_to_partner,
            net_points=t.net_points,
            funded_by_partner_milli_fen=money.funded_by_partner_milli_fen,
            owed_to_partner_milli_fen=money.owed_to_partner_milli_fen,
            net_milli_fen=money.net_milli_fen,
            funded_by_partner_fen=money.funded_by_partner_fen,
            owed_to_partner_fen=money.owed_to_partner_fen,
            net_fen=money.net_fen,
            by_rate=[PartnerStatementRate.of(rate, totals) for rate, totals in sorted(st.by_rate.items())],
            operation_count=st.operation_count,
            reconciled=st.reconciled,
            partner_id=st.partner["_id"],
        )

    @strawberry.field(description="The period's operations, oldest first.")
    async def operations(self, info: Info, first: int = 100, after: str | None = None) -> Connection[PartnerOperation]:
        size = page_size(first)
        position = decode_cursor(after)
        cursor_at = None
        if position is not None:
            at, _, op_id = position.partition("|")
            try:
                cursor_at = (datetime.fromisoformat(at), op_id)
            except ValueError:
                raise BadInput("after is not a valid cursor", field="after") from None
        docs = await info.context.services.partner_statements.operations(
            self.partner_id, self.period_from, self.period_to, first=size, after=cursor_at
        )
        ops = [PartnerOperation.of(doc) for doc in docs]
        return connection(ops, size, lambda op: f"{op.created_at.isoformat()}|{self.partner_id}:{op.event_id}")
