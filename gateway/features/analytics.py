"""Operator analytics (SPEC §7): points flows, liability, health, cost, breakage, members,
top gifts and partner totals. The numbers are aggregated by MongoDB (see
gateway/store/analytics.py); this module combines the handful of aggregated rows with the
pure formulas of gateway/domain/analytics.py. Definitions: docs/analytics.md.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from gateway.core.clock import Clock
from gateway.core.errors import BadInput
from gateway.domain.analytics import (
    EARN_KINDS,
    CatalogCost,
    Cohort,
    Flows,
    Health,
    HealthThresholds,
    Month,
    Range,
    Sums,
    breakage_rate,
    channel,
    default_cost_per_point,
    fen,
    flows,
    health,
    local_midnight,
    month_end,
    monthly,
    parse_month,
)
from gateway.domain.program import Program
from gateway.domain.settlement import SettlementTotals, settlement_money, totals_from_ledger_rows
from gateway.store.analytics import AnalyticsStore
from gateway.store.mongo import Database, Document

MONTH_OF_DAY = {"$substrBytes": ["$_id.day", 0, 7]}
MAX_TOP = 100


def span_of(start: date, end: date, program: Program) -> Range:
    try:
        return Range(start, end, program.timezone)
    except ValueError as exc:
        raise BadInput(str(exc), field="to") from None


@dataclass(frozen=True)
class CostPerPoint:
    milli_fen: int
    source: str  # SETTING, CATALOG or DEDUCTION_RATE


@dataclass(frozen=True)
class MonthReport:
    month: Month
    cost_per_point: CostPerPoint

    @property
    def expected_fen(self) -> int:
        return fen(self.month.available_points, self.cost_per_point.milli_fen)

    @property
    def actual_fen(self) -> int:
        return fen(self.month.flows.redeemed, self.cost_per_point.milli_fen)


@dataclass(frozen=True)
class Liability:
    available_points: int
    pending_points: int
    cost_per_point: CostPerPoint
    as_of: datetime

    @property
    def points(self) -> int:
        return self.available_points + self.pending_points

    @property
    def amount_fen(self) -> int:
        return fen(self.points, self.cost_per_point.milli_fen)


@dataclass(frozen=True)
class PointsReport:
    months: list[MonthReport]
    totals: Flows
    liability: Liability
    health: Health
    issued_by_source: list[tuple[str, int]]
    redeemed_by_channel: list[tuple[str, int]]
    issued_by_month: dict[str, int]

    @property
    def expected_fen(self) -> int:
        return fen(self.liability.available_points, self.liability.cost_per_point.milli_fen)

    @property
    def actual_fen(self) -> int:
        return fen(self.totals.redeemed, self.liability.cost_per_point.milli_fen)


@dataclass(frozen=True)
class GiftRank:
    gift_id: Any
    name: str
    redemptions: int
    points: int


@dataclass(frozen=True)
class PartnerReport:
    partner_id: str
    name: str
    totals: SettlementTotals
    money: dict[str, int] = field(default_factory=dict)


def _merged(rows: list[Document]) -> dict[Any, Sums]:
    """Rollup rows and live rows of the same key, added up."""
    merged: dict[Any, Sums] = {}
    for row in rows:
        key = row["_id"]
        hashable = tuple(sorted(key.items())) if isinstance(key, dict) else key
        merged[hashable] = merged.get(hashable, Sums()) + Sums.of(row)
    return merged


class Analytics:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self.store = AnalyticsStore(db)

    async def cost_per_point(self, program: Program) -> CostPerPoint:
        configured = program.analytics.cost_per_point_milli_fen
        if configured is not None:
            return CostPerPoint(configured, "SETTING")
        gifts = [
            CatalogCost(cost_price=g.get("costPrice", 0), cash=g.get("cash", 0), points=g.get("points", 0))
            for g in await self.store.listed_gift_costs()
        ]
        value, source = default_cost_per_point(gifts, program.deduction.points_per_yuan)
        return CostPerPoint(value, source)

    async def _rows(self, shape: str, span: Range, key: Any, *, whole_history: bool = False) -> list[Document]:
        now = self.clock.now()
        sealed = await self.store.sealed_until(now, span.timezone)
        return await self.store.flow_rows(
            shape,
            key,
            sealed=sealed,
            until=span.end_at,
            timezone=span.timezone,
            first_day=None if whole_history else span.start.isoformat(),
            last_day=span.end.isoformat(),
            split_day=span.start.isoformat() if whole_history else None,
        )

    async def points(self, span: Range, program: Program) -> PointsReport:
        first_day = span.start.isoformat()
        key = {
            "month": MONTH_OF_DAY,
            "inRange": {"$gte": ["$_id.day", first_day]},
            "kind": "$_id.kind",
            "reverses": "$_id.reverses",
        }
        rows = _merged(await self._rows("kind", span, key, whole_history=True))
        in_range: dict[str, Flows] = defaultdict(Flows)
        whole_month: dict[str, Flows] = defaultdict(Flows)
        held: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
        issued_by_month: dict[str, int] = defaultdict(int)
        by_source: dict[str, int] = defaultdict(int)
        by_channel: dict[str, int] = defaultdict(int)
        for hashable, sums in rows.items():
            k = dict(hashable)
            month, kind = k["month"], k["kind"]
            flow = flows(kind, sums)
            whole_month[month] += flow
            available, pending = held[month]
            held[month] = (available + sums.available, pending + sums.pending)
            issued_by_month[month] += flow.issued
            if not k["inRange"]:
                continue
            in_range[month] += flow
            if kind in EARN_KINDS and flow.issued:
                by_source[kind] += flow.issued
            lane = channel(kind, k.get("reverses"))
            if lane is not None:
                by_channel[lane] += flow.redeemed
        first = span.months[0]
        earlier = sorted(m for m in held if m < first)
        opening = (sum(held[m][0] for m in earlier), sum(held[m][1] for m in earlier))
        previous_key = max(earlier) if earlier else None
        previous = whole_month[previous_key] if previous_key is not None and _is_previous(previous_key, first) else None
        months = monthly(span.months, in_range, held, opening=opening, previous=previous or Flows())
        cpp = await self.cost_per_point(program)
        totals = sum((in_range[m] for m in span.months), Flows())
        last = months[-1]
        liability = Liability(
            available_points=last.available_points,
            pending_points=last.liability_points - last.available_points,
            cost_per_point=cpp,
            as_of=min(span.end_at, self.clock.now()),
        )
        thresholds = HealthThresholds(program.analytics.advice_low_percent, program.analytics.advice_high_percent)
        return PointsReport(
            months=[MonthReport(m, cpp) for m in months],
            totals=totals,
            liability=liability,
            health=health(totals.issued, totals.redeemed, thresholds),
            issued_by_source=sorted(by_source.items(), key=lambda kv: (-kv[1], kv[0])),
            redeemed_by_channel=sorted(by_channel.items(), key=lambda kv: (-kv[1], kv[0])),
            issued_by_month=dict(issued_by_month),
        )

    async def breakage(self, span: Range, report: PointsReport) -> tuple[float | None, list[Cohort]]:
        """Issue-month cohorts of the range and the breakage rate over the closed ones."""
        cohorts = await self._cohorts(span, report.issued_by_month)
        return breakage_rate(cohorts), cohorts

    async def _cohorts(self, span: Range, issued_by_month: dict[str, int]) -> list[Cohort]:
        now = self.clock.now()
        sealed = await self.store.sealed_until(now, span.timezone)
        used: dict[str, Document] = defaultdict(lambda: {"expired": 0, "redeemed": 0, "reversed": 0})
        for row in await self.store.cohort_rows(sealed=sealed, timezone=span.timezone):
            for name in ("expired", "redeemed", "reversed"):
                used[row["_id"]][name] += row[name]
        return [
            Cohort(month=m, issued=issued_by_month.get(m, 0), **used.get(m, {}))
            for m in span.months
            if issued_by_month.get(m, 0) or m in used
        ]

    async def members_by_tier(self, program: Program) -> list[tuple[str, int]]:
        """Members per tier now, in the program's tier order."""
        by_tier = await self.store.members_by_tier([t.code for t in program.tiers])
        return [(t.code, by_tier.get(t.code, 0)) for t in program.tiers]

    async def member_months(self, span: Range) -> list[tuple[str, int, int]]:
        """(month, new members, active members) per month of the range."""
        now = self.clock.now()
        sealed = await self.store.sealed_until(now, span.timezone)
        windows = []
        for key in span.months:
            month_start, month_stop = local_midnight(parse_month(key), span.timezone), month_end(key, span.timezone)
            start, stop = max(month_start, span.start_at), min(month_stop, span.end_at, now)
            whole = start == month_start and stop == month_stop and stop <= sealed
            windows.append((key, start, max(start, stop), whole))
        months = await self.store.member_months(windows, span.timezone, now)
        return [(k, months[k]["newMembers"], months[k]["activeMembers"]) for k in span.months]

    async def rfm(self, span: Range) -> list[tuple[str, int]]:
        """Members per RFM segment over the range's purchases, largest first."""
        rows = await self.store.rfm(span, self.clock.now())
        return sorted(((r["segment"], r["members"]) for r in rows), key=lambda kv: (-kv[1], kv[0]))

    async def top_gifts(self, span: Range, first: int) -> list[GiftRank]:
        if not 1 <= first <= MAX_TOP:
            raise BadInput(f"first must be 1 to {MAX_TOP}", field="first")
        rows = await self._rows("gift", span, {"gift": "$_id.giftId", "kind": "$_id.kind"})
        count: dict[Any, int] = defaultdict(int)
        points: dict[Any, int] = defaultdict(int)
        for row in rows:
            gift = row["_id"]["gift"]
            sign = 1 if row["_id"]["kind"] == "REDEMPTION" else -1
            count[gift] += sign * row["count"]
            points[gift] += row["spent_in"] - row["spent_out"]
        ranked = sorted((g for g in count if count[g] > 0), key=lambda g: (-count[g], -points[g], str(g)))[:first]
        names = await self.store.gift_names(ranked)
        return [GiftRank(g, names.get(g, ""), count[g], points[g]) for g in ranked]

    async def partners(self, span: Range) -> list[PartnerReport]:
        rows = await self._rows(
            "partner", span, {"partner": "$_id.partnerId", "kind": "$_id.kind", "reverses": "$_id.reverses"}
        )
        grouped: dict[str, list[Document]] = defaultdict(list)
        for row in rows:
            grouped[row["_id"]["partner"]].append(
                {
                    "_id": {"kind": row["_id"]["kind"], "reverses": row["_id"]["reverses"]},
                    "earned": row["earned_in"] - row["earned_out"],
                    "spent": row["spent_in"] - row["spent_out"],
                    "fee": row["fee"],
                }
            )
        reports = []
        for partner in await self.store.partners():
            totals = totals_from_ledger_rows(grouped.get(partner["_id"], []))
            # Priced at the partner's current rate; partner statements price each operation at its recorded rate.
            priced = settlement_money({partner.get("settlementMilliFenPerPoint", 0) or 0: totals})
            money = {
                "fundedByPartnerMilliFen": priced.funded_by_partner_milli_fen,
                "owedToPartnerMilliFen": priced.owed_to_partner_milli_fen,
                "netMilliFen": priced.net_milli_fen,
                "fundedByPartnerFen": priced.funded_by_partner_fen,
                "owedToPartnerFen": priced.owed_to_partner_fen,
                "netFen": priced.net_fen,
            }
            reports.append(PartnerReport(partner["_id"], partner.get("name", ""), totals, money))
        return sorted(reports, key=lambda r: (-abs(r.totals.net_points), r.partner_id))


def _is_previous(candidate: str, month: str) -> bool:
    first = parse_month(month)
    before = date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)
    return parse_month(candidate) == before
