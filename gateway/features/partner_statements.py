"""Partner settlement statements: a period's totals from the ledger, checked against the operations log.

Totals are grouped by the money-per-point rate recorded on each operation, so the
statement prices every operation as it was made; the money maths (and its one
rounding rule) is ``gateway.domain.settlement``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from gateway.core.clock import as_utc
from gateway.core.errors import BadInput
from gateway.domain.partner_terms import legacy_settlement_rate_of
from gateway.domain.settlement import (
    SettlementMoney,
    SettlementTotals,
    settlement_money,
    totals_from_ledger_rows,
    totals_from_operations,
)
from gateway.features.partners import Partners
from gateway.store import partners as store
from gateway.store.mongo import Database, Document


@dataclass
class Statement:
    """Totals by recorded rate, from the ledger and from the operations log."""

    partner: Document
    start: datetime
    end: datetime
    by_rate: dict[int, SettlementTotals]
    operation_count: int
    operations_by_rate: dict[int, SettlementTotals] = field(default_factory=dict)

    @property
    def totals(self) -> SettlementTotals:
        return sum(self.by_rate.values(), SettlementTotals())

    @property
    def money(self) -> SettlementMoney:
        return settlement_money(self.by_rate)

    @property
    def reconciled(self) -> bool:
        """The operations log and the ledger agree on every total at every rate."""
        zero = SettlementTotals()
        rates = set(self.by_rate) | set(self.operations_by_rate)
        return all(self.by_rate.get(r, zero) == self.operations_by_rate.get(r, zero) for r in rates)


class PartnerStatements:
    def __init__(self, db: Database, partners: Partners) -> None:
        self.db = db
        self.partners = partners

    async def statement(self, partner_id: str, start: datetime, end: datetime) -> Statement:
        """Totals for [start, end) from the ledger, checked against the operations log."""
        if as_utc(end) <= as_utc(start):
            raise BadInput("to must be after from", field="to")
        partner = await self.partners.get(partner_id)
        legacy_rate = legacy_settlement_rate_of(partner)
        rows_by_rate: dict[int, list[Document]] = {}
        for row in await store.ledger_sums(self.db, partner_id, start, end, legacy_rate=legacy_rate):
            rows_by_rate.setdefault(row["_id"]["rate"], []).append(row)
        ops = await store.operations_between(self.db, partner_id, start, end)
        ops_by_rate: dict[int, list[Document]] = {}
        for op in ops:
            ops_by_rate.setdefault(op.get("settlementMilliFenPerPoint", legacy_rate), []).append(op)
        return Statement(
            partner=partner,
            start=start,
            end=end,
            by_rate={rate: totals_from_ledger_rows(rows) for rate, rows in sorted(rows_by_rate.items())},
            operation_count=len(ops),
            operations_by_rate={rate: totals_from_operations(group) for rate, group in ops_by_rate.items()},
        )

    async def operations(
        self, partner_id: str, start: datetime, end: datetime, *, first: int, after: tuple[datetime, str] | None
    ) -> list[Document]:
        return await store.operations_page(self.db, partner_id, start, end, first=first, after=after)
