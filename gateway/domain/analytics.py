"""Operator analytics formulas (SPEC §7, seed 004 statistics, seed 003 RFM): pure functions.

The store aggregates the ledger in MongoDB into small rows (sums of entry deltas per
day and entry kind); these functions turn such rows into the numbers a dashboard shows.
Definitions (also in docs/analytics.md):

- issued    = points credited by earning entries (the positive ``lifetimeEarned`` deltas):
              purchase, check-in, behaviour, referral, grant, partner accrual, conversion in,
              campaign bonus.
- reversed  = earned points taken back (the negative ``lifetimeEarned`` deltas): refund
              clawbacks and partner reversals of accruals/conversions in. Never netted into issued.
- redeemed  = points spent (``spent`` deltas) by gifts, checkout deduction, partner burn and
              conversion out, NET of spends undone (cancelled redemptions, deduction returns,
              partner burn reversals): a cancelled order was never a redemption. ``returned``
              reports those undone points separately (already netted).
- adjusted  = operator deductions (negative grants, kind ADJUSTMENT): spent, but not redemptions.
- expired   = points that expired (``expired`` deltas), booked when the expiry is posted.

"Pending" here is every point a member holds but cannot spend now: the return window's pending
points and the points held at checkout or for an unpaid order (two-phase holds). So for any set
of entries: Δ(available + pending + held) = issued − reversed − redeemed − adjusted − expired,
and liability = available + pending + held.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

MILLI = 1000  # milli-fen per fen

EARN_KINDS = (
    "PURCHASE",
    "CHECK_IN",
    "REFERRAL",
    "BEHAVIOUR",
    "GRANT",
    "PARTNER_ACCRUE",
    "PARTNER_CONVERT_IN",
    "CAMPAIGN",
)
# Where redeemed points went; an undo counts against the channel of what it undoes.
CHANNEL_OF_KIND = {
    "REDEMPTION": "GIFTS",
    "REDEMPTION_CANCEL": "GIFTS",
    "DEDUCTION": "CHECKOUT_DEDUCTION",
    "DEDUCTION_RETURN": "CHECKOUT_DEDUCTION",
    "PARTNER_BURN": "PARTNER_BURN",
    "PARTNER_CONVERT_OUT": "PARTNER_CONVERSION",
}
CHANNEL_OF_REVERSED_KIND = {"PARTNER_BURN": "PARTNER_BURN", "PARTNER_CONVERT_OUT": "PARTNER_CONVERSION"}
# Entries a member caused (not the system settling lots): they make a member "active".
MEMBER_ACTIVITY_KINDS = (*EARN_KINDS, "REDEMPTION", "DEDUCTION", "PARTNER_BURN", "PARTNER_CONVERT_OUT")


class Advice(StrEnum):
    MORE_REDEMPTION_CHANNELS = "MORE_REDEMPTION_CHANNELS"
    MORE_STOCK = "MORE_STOCK"
    BALANCED = "BALANCED"


@dataclass(frozen=True)
class Sums:
    """Sums of ledger-entry deltas over some entries of one kind (one aggregated row)."""

    earned_in: int = 0  # Σ max(lifetimeEarned, 0)
    earned_out: int = 0  # Σ max(-lifetimeEarned, 0)
    spent_in: int = 0  # Σ max(spent, 0)
    spent_out: int = 0  # Σ max(-spent, 0)
    expired: int = 0
    available: int = 0
    pending: int = 0

    @classmethod
    def of(cls, row: Mapping[str, int]) -> Sums:
        return cls(**{name: int(row.get(name, 0) or 0) for name in cls.__dataclass_fields__})

    def __add__(self, other: Sums) -> Sums:
        return Sums(**{n: getattr(self, n) + getattr(other, n) for n in self.__dataclass_fields__})


@dataclass(frozen=True)
class Flows:
    issued: int = 0
    redeemed: int = 0
    expired: int = 0
    reversed: int = 0
    returned: int = 0
    adjusted: int = 0

    def __add__(self, other: Flows) -> Flows:
        return Flows(**{n: getattr(self, n) + getattr(other, n) for n in self.__dataclass_fields__})

    @property
    def held_change(self) -> int:
        """What these flows change in the points members hold (available + pending)."""
        return self.issued - self.reversed - self.redeemed - self.adjusted - self.expired


def flows(kind: str, sums: Sums) -> Flows:
    """Classify one kind's delta sums into the dashboard's flows (see the module docstring)."""
    spent = sums.spent_in - sums.spent_out
    adjusting = kind == "ADJUSTMENT"
    return Flows(
        issued=sums.earned_in,
        reversed=sums.earned_out,
        redeemed=0 if adjusting else spent,
        returned=0 if adjusting else sums.spent_out,
        adjusted=spent if adjusting else 0,
        expired=sums.expired,
    )


def channel(kind: str, reverses_kind: str | None = None) -> str | None:
    """The redemption channel an entry kind's spent points belong to (None: not a redemption)."""
    if kind == "PARTNER_REVERSE":
        return CHANNEL_OF_REVERSED_KIND.get(reverses_kind or "")
    return CHANNEL_OF_KIND.get(kind)


# --- time ---------------------------------------------------------------------------------


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def parse_month(key: str) -> date:
    year, month = key.split("-")
    return date(int(year), int(month), 1)


def next_month(first: date) -> date:
    return date(first.year + (first.month == 12), first.month % 12 + 1, 1)


def months_between(start: date, end: date) -> list[str]:
    """Calendar months touched by the local dates ``start..end`` (inclusive), oldest first."""
    if end < start:
        return []
    result, cursor, last = [], start.replace(day=1), end.replace(day=1)
    while cursor <= last:
        result.append(month_key(cursor))
        cursor = next_month(cursor)
    return result


def local_midnight(day: date, timezone: str) -> datetime:
    """The UTC instant a local date begins in ``timezone``."""
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def local_date(instant: datetime, timezone: str) -> date:
    return instant.astimezone(ZoneInfo(timezone)).date()


def month_end(key: str, timezone: str) -> datetime:
    """The instant a local calendar month ends (the next month's first midnight), in UTC."""
    return local_midnight(next_month(parse_month(key)), timezone)


def seal_boundary(now: datetime, timezone: str, margin: timedelta) -> datetime:
    """Rollups cover whole local days that ended at least ``margin`` ago (a transaction that
    started before a day ended commits within the margin), so a sealed day never changes."""
    return local_midnight(local_date(now - margin, timezone), timezone)


# --- rates, money ---------------------------------------------------------------------------


def growth(current: int, previous: int) -> float | None:
    """Month-on-month rate: (current − previous) / previous; None when the previous month is 0."""
    if previous == 0:
        return None
    return (current - previous) / previous


@dataclass(frozen=True)
class HealthThresholds:
    """Redemption rate below ``low`` → issuing outruns burning; above ``high`` → burning outruns issuing."""

    low_percent: int = 50
    high_percent: int = 100


@dataclass(frozen=True)
class Health:
    redemption_rate: float | None
    advice: Advice


def health(issued: int, redeemed: int, thresholds: HealthThresholds = HealthThresholds()) -> Health:
    """Seed 004's 积分健康: redemption rate = redeemed / issued, and what the operator should do."""
    if issued <= 0:
        return Health(None, Advice.MORE_STOCK if redeemed > 0 else Advice.BALANCED)
    rate = redeemed / issued
    if rate * 100 < thresholds.low_percent:
        return Health(rate, Advice.MORE_REDEMPTION_CHANNELS)
    if rate * 100 > thresholds.high_percent:
        return Health(rate, Advice.MORE_STOCK)
    return Health(rate, Advice.BALANCED)


def fen(points: int, milli_fen_per_point: int) -> int:
    """Points at a cost per point, in whole fen (half away from zero, rounded once)."""
    milli = points * milli_fen_per_point
    sign = -1 if milli < 0 else 1
    return sign * ((abs(milli) + MILLI // 2) // MILLI)


@dataclass(frozen=True)
class CatalogCost:
    """The part of a listed gift the default cost per point looks at."""

    cost_price: int  # fen
    cash: int  # fen
    points: int


def default_cost_per_point(gifts: Iterable[CatalogCost], points_per_yuan: int) -> tuple[int, str]:
    """Milli-fen per point and where it came from, when the program sets none.

    Seed 004: a gift's cost per point is (cost price − cash part) / points. Over the
    listed catalog it is Σ(cost price − cash) / Σ points (what one of each gift costs
    the operator per point). With no listed gift, the checkout deduction rate
    (N points = ¥1, so 100 / N fen a point) is what a point is worth.
    """
    money = points = 0
    for gift in gifts:
        if gift.points > 0:
            money += max(gift.cost_price - gift.cash, 0)
            points += gift.points
    if points:
        value = (Decimal(money) * MILLI / Decimal(points)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return int(value), "CATALOG"
    value = (Decimal(100 * MILLI) / Decimal(points_per_yuan)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(value), "DEDUCTION_RATE"


# --- months: flows, growth, liability at month end -----------------------------------------------


@dataclass(frozen=True)
class Month:
    month: str
    flows: Flows
    liability_points: int  # available + pending at the month's end (point in time)
    available_points: int
    issued_growth: float | None
    redeemed_growth: float | None
    expired_growth: float | None


def monthly(
    months: list[str],
    flows_by_month: Mapping[str, Flows],
    held_by_month: Mapping[str, tuple[int, int]],
    opening: tuple[int, int] = (0, 0),
    previous: Flows | None = None,
) -> list[Month]:
    """Months ``months`` (consecutive, oldest first) with growth against the month before
    (``previous`` for the first) and the points held at each month's end.

    ``held_by_month`` is each month's change in (available, pending); ``opening`` what was
    held before the first month.
    """
    result: list[Month] = []
    available, pending = opening
    before = previous or Flows()
    for key in months:
        current = flows_by_month.get(key, Flows())
        change = held_by_month.get(key, (0, 0))
        available += change[0]
        pending += change[1]
        result.append(
            Month(
                month=key,
                flows=current,
                liability_points=available + pending,
                available_points=available,
                issued_growth=growth(current.issued, before.issued),
                redeemed_growth=growth(current.redeemed, before.redeemed),
                expired_growth=growth(current.expired, before.expired),
            )
        )
        before = current
    return result


# --- breakage ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cohort:
    """Points issued in one month and what became of them so far."""

    month: str
    issued: int
    expired: int = 0
    redeemed: int = 0
    reversed: int = 0

    @property
    def outstanding(self) -> int:
        return self.issued - self.expired - self.redeemed - self.reversed

    @property
    def closed(self) -> bool:
        """Every point of the cohort is resolved (expired, redeemed or taken back)."""
        return self.issued > 0 and self.outstanding <= 0


def breakage_rate(cohorts: Iterable[Cohort]) -> float | None:
    """The share of issued points that expired unredeemed, over closed cohorts:
    Σ expired / Σ (issued − reversed). None while no cohort is closed."""
    expired = net = 0
    for cohort in cohorts:
        if cohort.closed:
            expired += cohort.expired
            net += cohort.issued - cohort.reversed
    return expired / net if net > 0 else None


# --- RFM (seed 003) ---------------------------------------------------------------------------


def quintile(rank: int, count: int) -> int:
    """Score 1..5 of the ``rank``-th lowest (1-based, ties share the lowest rank) of ``count``."""
    if not 1 <= rank <= count:
        raise ValueError("rank must be within 1..count")
    return (rank - 1) * 5 // count + 1


class Segment(StrEnum):
    CHAMPIONS = "CHAMPIONS"
    LOYAL = "LOYAL"
    POTENTIAL_LOYALISTS = "POTENTIAL_LOYALISTS"
    NEW = "NEW"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"
    AT_RISK = "AT_RISK"
    HIBERNATING = "HIBERNATING"
    LOST = "LOST"


@dataclass(frozen=True)
class SegmentRule:
    segment: Segment
    min_r: int = 1
    max_r: int = 5
    min_f: int = 1
    max_f: int = 5
    min_m: int = 1


# First matching rule wins; the last one matches everyone. Higher score = more recent,
# more frequent, more spent.
SEGMENT_RULES: tuple[SegmentRule, ...] = (
    SegmentRule(Segment.CHAMPIONS, min_r=4, min_f=4, min_m=4),
    SegmentRule(Segment.LOYAL, min_r=3, min_f=4),
    SegmentRule(Segment.NEW, min_r=5, max_f=1),
    SegmentRule(Segment.POTENTIAL_LOYALISTS, min_r=4, max_f=3),
    SegmentRule(Segment.AT_RISK, max_r=2, min_f=3),
    SegmentRule(Segment.LOST, max_r=1, max_f=2),
    SegmentRule(Segment.HIBERNATING, max_r=2, max_f=2),
    SegmentRule(Segment.NEEDS_ATTENTION),
)


def segment(r: int, f: int, m: int) -> Segment:
    for rule in SEGMENT_RULES:
        if rule.min_r <= r <= rule.max_r and rule.min_f <= f <= rule.max_f and m >= rule.min_m:
            return rule.segment
    return Segment.NEEDS_ATTENTION


def segment_switch(r: object, f: object, m: object) -> dict[str, object]:
    """The same rules as a MongoDB ``$switch`` over score expressions, so the database
    segments members exactly as :func:`segment` would."""

    def between(expr: object, low: int, high: int) -> list[dict[str, object]]:
        return [{"$gte": [expr, low]}, {"$lte": [expr, high]}]

    branches = [
        {
            "case": {
                "$and": [
                    *between(r, rule.min_r, rule.max_r),
                    *between(f, rule.min_f, rule.max_f),
                    {"$gte": [m, rule.min_m]},
                ]
            },
            "then": str(rule.segment),
        }
        for rule in SEGMENT_RULES
    ]
    return {"$switch": {"branches": branches, "default": str(Segment.NEEDS_ATTENTION)}}


@dataclass
class Range:
    """A validated from..to of local dates and the instants they span."""

    start: date
    end: date
    timezone: str
    months: list[str] = field(init=False)

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("to must not be before from")
        if (self.end - self.start).days > 3660:
            raise ValueError("a range spans at most ten years")
        self.months = months_between(self.start, self.end)

    @property
    def start_at(self) -> datetime:
        return local_midnight(self.start, self.timezone)

    @property
    def end_at(self) -> datetime:
        """Exclusive: the midnight after ``end``."""
        return local_midnight(self.end + timedelta(days=1), self.timezone)


def entry_flows(kind: str, change: Mapping[str, int]) -> Flows:
    """The flows of one ledger entry, from its ``delta`` (a live update's share)."""
    earned, spent = change.get("lifetimeEarned", 0), change.get("spent", 0)
    return flows(
        kind,
        Sums(
            earned_in=max(earned, 0),
            earned_out=max(-earned, 0),
            spent_in=max(spent, 0),
            spent_out=max(-spent, 0),
            expired=change.get("expired", 0),
            available=change.get("available", 0),
            pending=change.get("pending", 0) + change.get("held", 0),
        ),
    )
