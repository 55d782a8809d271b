"""GraphQL types of the operator analytics (docs/analytics.md). Aggregates only: no member
ids, names or balances, so the dashboard role may read every field."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from gateway.domain.analytics import MILLI, Advice, Flows, Range, Segment, local_date
from gateway.domain.program import AnalyticsSettings as AnalyticsSettingsModel
from gateway.domain.program import Program
from gateway.features.analytics import CostPerPoint, GiftRank, PartnerReport, PointsReport
from resolvers.context import Info
from resolvers.enums import graphql_enum

HealthAdvice = graphql_enum(Advice, "HealthAdvice", "What the redemption rate says the program needs.")
RfmSegmentName = graphql_enum(Segment, "RfmSegmentName", "RFM segments (seed 003), see docs/analytics.md.")


@strawberry.type(description="One calendar month (program time zone) of points flows.")
class PointsMonth:
    month: str = strawberry.field(description="YYYY-MM in the program's time zone.")
    issued: int
    redeemed: int = strawberry.field(description="Net of spends undone (cancelled redemptions, returns).")
    expired: int
    reversed: int = strawberry.field(description="Earned points taken back: refund clawbacks, partner reversals.")
    returned: int = strawberry.field(description="Spent points given back (already netted out of redeemed).")
    adjusted: int = strawberry.field(description="Operator deductions (negative grants).")
    issued_growth: float | None = strawberry.field(description="Month-on-month rate; null when last month was 0.")
    redeemed_growth: float | None
    expired_growth: float | None
    liability_points: int = strawberry.field(
        description="Available + pending points held at the month's end (or `to`/now if earlier), from the ledger."
    )
    available_points: int = strawberry.field(description="Available points held at the month's end.")
    liability_fen: int = strawberry.field(description="liabilityPoints × cost per point.")
    expected_cost_fen: int = strawberry.field(description="Available points at month end × cost per point.")
    actual_cost_fen: int = strawberry.field(description="Redeemed points × cost per point.")


@strawberry.type(description="Flows over the whole range.")
class PointsTotals:
    issued: int
    redeemed: int
    expired: int
    reversed: int
    returned: int
    adjusted: int

    @classmethod
    def of(cls, f: Flows) -> PointsTotals:
        return cls(
            issued=f.issued,
            redeemed=f.redeemed,
            expired=f.expired,
            reversed=f.reversed,
            returned=f.returned,
            adjusted=f.adjusted,
        )


@strawberry.type(description="Outstanding points liability: (available + pending) × cost per point.")
class PointsLiability:
    available_points: int
    pending_points: int
    points: int
    cost_per_point_fen: float = strawberry.field(description="Fen per point (costPerPointMilliFen / 1000).")
    cost_per_point_milli_fen: int
    cost_per_point_source: str = strawberry.field(description="SETTING, CATALOG or DEDUCTION_RATE.")
    amount_fen: int
    as_of: datetime


@strawberry.type(description="积分健康: redemption rate = redeemed / issued over the range.")
class PointsHealth:
    redemption_rate: float | None
    advice: HealthAdvice  # type: ignore[valid-type]
    low_threshold_percent: int
    high_threshold_percent: int


@strawberry.type
class MonthCost:
    month: str
    expected_fen: int
    actual_fen: int


@strawberry.type(description="Seed 004 cost analysis.")
class CostAnalysis:
    expected_fen: int = strawberry.field(description="Available (redeemable) points at the range end × cost per point.")
    actual_fen: int = strawberry.field(description="Points redeemed in the range × cost per point.")
    months: list[MonthCost]


@strawberry.type
class IssuedBySource:
    source: str = strawberry.field(description="The earning entry kind: PURCHASE, CHECK_IN, GRANT, PARTNER_ACCRUE...")
    points: int


@strawberry.type
class RedeemedByChannel:
    channel: str = strawberry.field(description="GIFTS, CHECKOUT_DEDUCTION, PARTNER_BURN or PARTNER_CONVERSION.")
    points: int


@strawberry.type(description="Points issued in one month and what became of them so far.")
class BreakageCohort:
    month: str
    issued: int
    expired: int
    redeemed: int = strawberry.field(description="Spent (redeemed or deducted by the operator), net of returns.")
    reversed: int
    outstanding: int
    closed: bool = strawberry.field(description="Every point is resolved; only closed cohorts enter the rate.")


@strawberry.type(description="Breakage: the share of issued points that expired unredeemed.")
class Breakage:
    rate: float | None = strawberry.field(description="Σ expired / Σ (issued − reversed) over closed cohorts.")
    cohorts: list[BreakageCohort]


@strawberry.type(description="Points flows, liability, health, cost and breakage for a range of local dates.")
class PointsAnalytics:
    months: list[PointsMonth]
    totals: PointsTotals
    liability: PointsLiability
    health: PointsHealth
    cost: CostAnalysis
    issued_by_source: list[IssuedBySource]
    redeemed_by_channel: list[RedeemedByChannel]
    span: strawberry.Private[Range]
    report: strawberry.Private[PointsReport]

    @strawberry.field(description="Breakage by issue-month cohort (computed only when asked for).")
    async def breakage(self, info: Info) -> Breakage:
        rate, cohorts = await info.context.services.analytics.breakage(self.span, self.report)
        return Breakage(
            rate=rate,
            cohorts=[
                BreakageCohort(
                    month=c.month,
                    issued=c.issued,
                    expired=c.expired,
                    redeemed=c.redeemed,
                    reversed=c.reversed,
                    outstanding=c.outstanding,
                    closed=c.closed,
                )
                for c in cohorts
            ],
        )

    @classmethod
    def of(cls, report: PointsReport, program: Program, span: Range) -> PointsAnalytics:
        cpp = report.liability.cost_per_point
        return cls(
            months=[
                PointsMonth(
                    month=m.month.month,
                    issued=m.month.flows.issued,
                    redeemed=m.month.flows.redeemed,
                    expired=m.month.flows.expired,
                    reversed=m.month.flows.reversed,
                    returned=m.month.flows.returned,
                    adjusted=m.month.flows.adjusted,
                    issued_growth=m.month.issued_growth,
                    redeemed_growth=m.month.redeemed_growth,
                    expired_growth=m.month.expired_growth,
                    liability_points=m.month.liability_points,
                    available_points=m.month.available_points,
                    liability_fen=_fen(m.month.liability_points, cpp),
                    expected_cost_fen=m.expected_fen,
                    actual_cost_fen=m.actual_fen,
                )
                for m in report.months
            ],
            totals=PointsTotals.of(report.totals),
            liability=PointsLiability(
                available_points=report.liability.available_points,
                pending_points=report.liability.pending_points,
                points=report.liability.points,
                cost_per_point_fen=cpp.milli_fen / MILLI,
                cost_per_point_milli_fen=cpp.milli_fen,
                cost_per_point_source=cpp.source,
                amount_fen=report.liability.amount_fen,
                as_of=report.liability.as_of,
            ),
            health=PointsHealth(
                redemption_rate=report.health.redemption_rate,
                advice=HealthAdvice(report.health.advice.value),
                low_threshold_percent=program.analytics.advice_low_percent,
                high_threshold_percent=program.analytics.advice_high_percent,
            ),
            cost=CostAnalysis(
                expected_fen=report.expected_fen,
                actual_fen=report.actual_fen,
                months=[
                    MonthCost(month=m.month.month, expected_fen=m.expected_fen, actual_fen=m.actual_fen)
                    for m in report.months
                ],
            ),
            issued_by_source=[IssuedBySource(source=s, points=p) for s, p in report.issued_by_source],
            redeemed_by_channel=[RedeemedByChannel(channel=c, points=p) for c, p in report.redeemed_by_channel],
            span=span,
            report=report,
        )


def _fen(points: int, cpp: CostPerPoint) -> int:
    from gateway.domain.analytics import fen

    return fen(points, cpp.milli_fen)


@strawberry.type(description="A tier as dashboards name it.")
class TierName:
    code: str
    name: str


@strawberry.type
class TierMembers:
    tier: TierName
    members: int


@strawberry.type
class MemberMonth:
    month: str
    new_members: int = strawberry.field(description="Members who registered in the month.")
    active_members: int = strawberry.field(
        description="Members with at least one entry they caused (earning, redeeming, deducting, partner burn)."
    )


@strawberry.type
class RfmSegment:
    segment: RfmSegmentName  # type: ignore[valid-type]
    members: int


@strawberry.type(
    description="Members by tier (now), new and active members per month, RFM segments. Each part "
    "is computed only when asked for."
)
class MemberAnalytics:
    span: strawberry.Private[Range]
    program: strawberry.Private[Program]

    @strawberry.field(description="Members per tier now, in tier order.")
    async def by_tier(self, info: Info) -> list[TierMembers]:
        names = {t.code: t.name for t in self.program.tiers}
        rows = await info.context.services.analytics.members_by_tier(self.program)
        return [TierMembers(tier=TierName(code=c, name=names.get(c, c)), members=n) for c, n in rows]

    @strawberry.field(description="New and active members per month of the range.")
    async def months(self, info: Info) -> list[MemberMonth]:
        rows = await info.context.services.analytics.member_months(self.span)
        return [MemberMonth(month=m, new_members=n, active_members=a) for m, n, a in rows]

    @strawberry.field(description="Members per RFM segment over the range's purchases, largest first.")
    async def rfm(self, info: Info) -> list[RfmSegment]:
        rows = await info.context.services.analytics.rfm(self.span)
        return [RfmSegment(segment=RfmSegmentName(s), members=n) for s, n in rows]


@strawberry.type
class GiftName:
    id: strawberry.ID
    name: str


@strawberry.type(description="A gift by redemptions in the range (cancelled orders excluded).")
class TopGift:
    gift: GiftName
    redemptions: int
    points: int

    @classmethod
    def of(cls, rank: GiftRank) -> TopGift:
        return cls(
            gift=GiftName(id=strawberry.ID(str(rank.gift_id)), name=rank.name),
            redemptions=rank.redemptions,
            points=rank.points,
        )


@strawberry.type
class PartnerName:
    id: strawberry.ID
    name: str


@strawberry.type(description="A partner's coalition-point totals in the range, net of its reversals.")
class PartnerTotals:
    partner: PartnerName
    accrued: int = strawberry.field(description="Accrued less accrual reversals.")
    burned: int = strawberry.field(description="Burned less burn reversals.")
    converted_in: int = strawberry.field(description="Converted into coalition points, less reversals.")
    converted_out: int = strawberry.field(description="Converted out of coalition points (net of fee), less reversals.")
    converted: int = strawberry.field(description="convertedIn + convertedOut.")
    fees: int
    funded_by_partner: int
    owed_to_partner: int
    net_points: int = strawberry.field(description="owedToPartner − fundedByPartner (positive: the operator pays).")
    funded_by_partner_fen: int
    owed_to_partner_fen: int
    net_fen: int = strawberry.field(description="Settlement money at the partner's agreed price per point.")

    @classmethod
    def of(cls, report: PartnerReport) -> PartnerTotals:
        t = report.totals
        converted_in = t.converted_in - t.conversion_reversed_in
        converted_out = t.converted_out - t.conversion_reversed_out
        return cls(
            partner=PartnerName(id=strawberry.ID(report.partner_id), name=report.name),
            accrued=t.accrued - t.accrual_reversed,
            burned=t.burned - t.burn_reversed,
            converted_in=converted_in,
            converted_out=converted_out,
            converted=converted_in + converted_out,
            fees=t.fees,
            funded_by_partner=t.funded_by_partner,
            owed_to_partner=t.owed_to_partner,
            net_points=t.net_points,
            funded_by_partner_fen=report.money["fundedByPartnerFen"],
            owed_to_partner_fen=report.money["owedToPartnerFen"],
            net_fen=report.money["netFen"],
        )


@strawberry.type(description="Dashboard analytics settings (a part of the program).")
class AnalyticsSettings:
    timezone: str = strawberry.field(description="The program time zone months are counted in.")
    today: date = strawberry.field(description="Today in the program time zone, by the gateway's clock.")
    cost_per_point_milli_fen: int | None = strawberry.field(description="null: derived from the listed catalog.")
    advice_low_percent: int
    advice_high_percent: int

    @classmethod
    def of(cls, program: Program, now: datetime) -> AnalyticsSettings:
        a: AnalyticsSettingsModel = program.analytics
        return cls(
            timezone=program.timezone,
            today=local_date(now, program.timezone),
            cost_per_point_milli_fen=a.cost_per_point_milli_fen,
            advice_low_percent=a.advice_low_percent,
            advice_high_percent=a.advice_high_percent,
        )


@strawberry.input
class AnalyticsSettingsInput:
    cost_per_point_milli_fen: int | None = strawberry.field(
        default=strawberry.UNSET, description="null returns to the catalog-derived default."
    )
    advice_low_percent: int | None = strawberry.UNSET
    advice_high_percent: int | None = strawberry.UNSET


@strawberry.type(description="What changed in the points flows since the last update (at most one a second).")
class AnalyticsUpdate:
    at: datetime
    entries: int = strawberry.field(description="Ledger entries committed since the previous update.")
    issued: int
    redeemed: int
    expired: int
    reversed: int
