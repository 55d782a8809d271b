"""Points-mall rules over plain data: what a gift costs now, and whether a member may redeem it.

No I/O here: the services read the gift, the member and the member's recent orders,
and these functions decide. The same functions answer the storefront's
"can I redeem this?" and guard the redemption transaction, so the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from gateway.core.clock import as_utc
from gateway.domain.calendar import Period, period_start
from gateway.domain.member_status import REFUSAL_CODE, MemberStatus
from gateway.domain.program import Tier
from gateway.domain.tiers import tier_rank


class Reason(StrEnum):
    """Why a member cannot redeem a gift now; also the error code a redemption fails with."""

    MEMBER_FROZEN = "MEMBER_FROZEN"
    MEMBER_CLOSED = "MEMBER_CLOSED"
    MEMBER_MERGED = "MEMBER_MERGED"
    NOT_LISTED = "NOT_LISTED"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    TIER_TOO_LOW = "TIER_TOO_LOW"
    LIMIT_REACHED = "LIMIT_REACHED"
    INSUFFICIENT_POINTS = "INSUFFICIENT_POINTS"


class Status(StrEnum):
    """Where a gift stands in the mall at one instant (derived, never stored)."""

    UNLISTED = "UNLISTED"
    SCHEDULED = "SCHEDULED"
    ON_SALE = "ON_SALE"
    SOLD_OUT = "SOLD_OUT"
    ENDED = "ENDED"


@dataclass(frozen=True)
class Offer:
    """A limited-time points price (限时兑换), in force for ``starts_at <= now < ends_at``."""

    points: int
    starts_at: datetime
    ends_at: datetime

    def active(self, now: datetime) -> bool:
        return as_utc(self.starts_at) <= now < as_utc(self.ends_at)


@dataclass(frozen=True)
class Limits:
    """限兑: ``per_member`` units per member per ``period`` window, ``per_order`` units per order."""

    per_member: int | None = None
    period: Period | None = None
    per_order: int | None = None


@dataclass(frozen=True)
class GiftRules:
    """The part of a gift the rules look at."""

    points: int
    cash: int
    cost_price: int
    stock: int
    listed: bool
    list_from: datetime | None
    list_until: datetime | None
    min_tier: str
    limits: Limits = Limits()
    offer: Offer | None = None


@dataclass(frozen=True)
class Price:
    points: int
    cash: int
    on_offer: bool


@dataclass(frozen=True)
class Eligibility:
    can_redeem: bool
    reason: Reason | None = None


def in_window(gift: GiftRules, now: datetime) -> bool:
    started = gift.list_from is None or as_utc(gift.list_from) <= now
    not_ended = gift.list_until is None or now < as_utc(gift.list_until)
    return started and not_ended


def status(gift: GiftRules, now: datetime) -> Status:
    """Unlisted by the operator, not yet on, ended, sold out (delisted until restocked), or on sale."""
    if not gift.listed:
        return Status.UNLISTED
    if gift.list_from is not None and now < as_utc(gift.list_from):
        return Status.SCHEDULED
    if gift.list_until is not None and now >= as_utc(gift.list_until):
        return Status.ENDED
    if gift.stock <= 0:
        return Status.SOLD_OUT
    return Status.ON_SALE


def price_at(gift: GiftRules, now: datetime) -> Price:
    """The price in force at ``now``: the offer's points inside its window, else the list price."""
    if gift.offer is not None and gift.offer.active(now):
        return Price(points=gift.offer.points, cash=gift.cash, on_offer=True)
    return Price(points=gift.points, cash=gift.cash, on_offer=False)


def cost_per_point(cost_price: int, cash: int, points: int) -> Decimal:
    """Seed 004: (cost price − cash part) / points, in yuan per point, rounded half-up to 3 places.

    ¥3,200 for 1,500 points → 2.133; with ¥300 cash → 1.933. Inputs are fen and points.
    """
    if points <= 0:
        raise ValueError("points must be positive")
    yuan = (Decimal(cost_price) - Decimal(cash)) / Decimal(100)
    return (yuan / Decimal(points)).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def default_min_tier(tiers: tuple[Tier, ...]) -> str:
    """The program's lowest tier that may redeem gifts (seed 000: Senior); the top tier if none may."""
    for tier in tiers:
        if tier.can_redeem_gifts:
            return tier.code
    return tiers[-1].code


def tier_allows(member_tier: str, min_tier: str, tiers: tuple[Tier, ...]) -> bool:
    """The member's tier must both reach the gift's minimum and carry the program's redeem permission."""
    member_rank = tier_rank(member_tier, tiers)
    needed = tier_rank(min_tier, tiers)
    if member_rank is None or needed is None:
        return False
    return member_rank >= needed and tiers[member_rank].can_redeem_gifts


def limit_since(gift: GiftRules, now: datetime, timezone: str) -> datetime | None:
    """From when a member's earlier orders of this gift count against its limit; None if unlimited."""
    if gift.limits.per_member is None or gift.limits.period is None:
        return None
    return period_start(now, gift.limits.period, timezone)


def eligibility(
    gift: GiftRules,
    *,
    member_tier: str,
    available_points: int,
    used_in_window: int,
    quantity: int,
    now: datetime,
    tiers: tuple[Tier, ...],
    member_status: MemberStatus = MemberStatus.ACTIVE,
) -> Eligibility:
    """Can this member redeem ``quantity`` of this gift at ``now``? The first failing rule is the reason.

    Order: the account may not spend (frozen, closed, merged) → not offered (unlisted, scheduled,
    ended) → out of stock → tier → limits → points, so the reason is the one the member can do
    least about first; a frozen account's storefront says so on every gift.
    """
    if member_status is not MemberStatus.ACTIVE:
        return Eligibility(False, Reason(REFUSAL_CODE[member_status]))
    if not gift.listed or not in_window(gift, now):
        return Eligibility(False, Reason.NOT_LISTED)
    if gift.stock < quantity or gift.stock <= 0:
        return Eligibility(False, Reason.OUT_OF_STOCK)
    if not tier_allows(member_tier, gift.min_tier, tiers):
        return Eligibility(False, Reason.TIER_TOO_LOW)
    limits = gift.limits
    if limits.per_order is not None and quantity > limits.per_order:
        return Eligibility(False, Reason.LIMIT_REACHED)
    if limits.per_member is not None and used_in_window + quantity > limits.per_member:
        return Eligibility(False, Reason.LIMIT_REACHED)
    if available_points < price_at(gift, now).points * quantity:
        return Eligibility(False, Reason.INSUFFICIENT_POINTS)
    return Eligibility(True)


def storefront_visible(listed: bool) -> bool:
    """The catalog's visibility rule for anyone but an admin: a gift the operator unlisted does
    not exist for them. A listed gift stays reachable by id whatever its window or stock says
    (its status tells SCHEDULED, SOLD_OUT or ENDED); the mall's list also leaves out ended ones.
    Everything that shows a gift to such a caller (``gift(id)``, federation ``_entities``,
    ``giftStockChanged``, the mall page) applies this rule."""
    return listed


UsageKey = tuple[str, str, datetime]
"""(member id, gift id, window start)."""


def units_in_windows(orders: list[tuple[str, str, datetime, int]], keys: list[UsageKey]) -> list[int]:
    """For each key, the units of the (member, gift) orders placed at or after the window start.

    ``orders`` are (member id, gift id, placed at, quantity) of orders that count (not cancelled).
    """
    by_pair: dict[tuple[str, str], list[tuple[datetime, int]]] = {}
    for member_id, gift_id, at, quantity in orders:
        by_pair.setdefault((member_id, gift_id), []).append((at, quantity))
    return [sum(q for at, q in by_pair.get((m, g), ()) if at >= since) for m, g, since in keys]
