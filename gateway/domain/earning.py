"""Earning rules (积分获取规则) as pure functions over the program configuration.

How purchase multipliers combine (a choice, documented in docs/points.md):

    points = floor(amount / unit) × purchase_points
             × tier multiplier            (the tier held when paying)
             × paid-member multiplier     (only for paid members)
             × occasion multiplier        (the best of member day and birthday; they do not stack)

Status multipliers (tier, paid membership) stack with each other and with one
occasion; occasions do not stack with each other, so a member day that falls on
a member's birthday is still one celebration. All arithmetic is integer percent
with one floor at the end, so no floats ever touch a balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from gateway.domain.program import DeductionRules, EarnCap, EarningRules, GrowthRules, Tier


def is_member_day(day: date, rules: EarningRules) -> bool:
    """会员日: a configured weekday (0 = Monday) or day of the month."""
    return day.weekday() in rules.member_day_weekdays or day.day in rules.member_day_month_days


def is_birthday(day: date, birthday: date | None) -> bool:
    """Born on 29 February? Then the birthday is 28 February in other years."""
    if birthday is None:
        return False
    if birthday.month == 2 and birthday.day == 29:
        leap = day.year % 4 == 0 and (day.year % 100 != 0 or day.year % 400 == 0)
        return (day.month, day.day) == ((2, 29) if leap else (2, 28))
    return (day.month, day.day) == (birthday.month, birthday.day)


@dataclass(frozen=True)
class PurchaseEarning:
    base: int
    multiplier_percents: tuple[tuple[str, int], ...]
    points: int


def purchase_points(
    amount_fen: int,
    rules: EarningRules,
    tier: Tier,
    *,
    member_day: bool = False,
    birthday: bool = False,
    paid_member: bool = False,
) -> PurchaseEarning:
    """Points for a purchase of ``amount_fen`` before caps (see the module docstring)."""
    if amount_fen < 0:
        raise ValueError("amount must not be negative")
    base = amount_fen // rules.purchase_unit_fen * rules.purchase_points
    factors: list[tuple[str, int]] = [("TIER", tier.earn_multiplier_percent)]
    if paid_member:
        factors.append(("PAID_MEMBER", rules.paid_member_multiplier_percent))
    occasions = []
    if member_day:
        occasions.append(("MEMBER_DAY", rules.member_day_multiplier_percent))
    if birthday:
        occasions.append(("BIRTHDAY", rules.birthday_multiplier_percent))
    if occasions:
        factors.append(max(occasions, key=lambda f: f[1]))
    numerator, denominator = base, 1
    for _, percent in factors:
        numerator *= percent
        denominator *= 100
    return PurchaseEarning(base=base, multiplier_percents=tuple(factors), points=numerator // denominator)


def capped(points: int, cap: EarnCap | None, *, earned_today: int, earned_this_month: int) -> int:
    """What may still be earned under a per-member daily/monthly cap (获取上限)."""
    if points <= 0 or cap is None:
        return max(points, 0)
    room = points
    if cap.daily is not None:
        room = min(room, cap.daily - earned_today)
    if cap.monthly is not None:
        room = min(room, cap.monthly - earned_this_month)
    return max(room, 0)


@dataclass(frozen=True)
class CheckIn:
    streak: int
    points: int
    bonus: int


def check_in(last_day: date | None, streak: int, today: date, rules: EarningRules) -> CheckIn | None:
    """Today's check-in, or None if the member already checked in today.

    The streak continues when the last check-in was yesterday and restarts at 1
    otherwise. A streak bonus is paid every time the streak reaches a multiple of
    its ``days`` (7, 14, 21... for a 7-day bonus); several bonuses can coincide.
    """
    if last_day is not None and last_day >= today:
        return None
    new_streak = streak + 1 if last_day == today - timedelta(days=1) else 1
    bonus = sum(b.bonus for b in rules.check_in_streak_bonuses if new_streak % b.days == 0)
    return CheckIn(streak=new_streak, points=rules.check_in_points + bonus, bonus=bonus)


def proportional_take_back(earned: int, paid: int, refunded_before: int, refund_now: int) -> int:
    """Points a (partial) refund takes back: the share of what the order earned.

    Computed on the cumulative refunded amount so a sequence of partial refunds
    adds up to exactly what the order earned once it is fully refunded.
    """
    if paid <= 0 or earned <= 0:
        return 0
    if refunded_before < 0 or refund_now < 0 or refunded_before + refund_now > paid:
        raise ValueError("cannot refund more than was paid")
    return earned * (refunded_before + refund_now) // paid - earned * refunded_before // paid


def purchase_growth(amount_fen: int, rules: GrowthRules) -> int:
    """Growth value (成长值) from spend: per whole yuan."""
    return amount_fen // 100 * rules.per_yuan


@dataclass(frozen=True)
class Deduction:
    points: int
    value_fen: int
    max_points: int


def max_deduction_points(order_amount_fen: int, rules: DeductionRules) -> int:
    """The most points an order of ``order_amount_fen`` may use (积分抵扣上限)."""
    max_fen = order_amount_fen * rules.max_percent_of_order // 100
    return max_fen * rules.points_per_yuan // 100


def deduction(points: int, order_amount_fen: int, rules: DeductionRules) -> Deduction:
    """Money value of ``points`` at checkout; raises ValueError (with the reason) if not allowed.

    N points = ¥1, so a point is worth 100/N fen; a deduction must be worth a whole
    number of fen and stay within the per-order cap.
    """
    if order_amount_fen <= 0:
        raise ValueError("orderAmount must be positive")
    if points <= 0:
        raise ValueError("points must be positive")
    most = max_deduction_points(order_amount_fen, rules)
    if points > most:
        raise ValueError(f"at most {most} points may be used on this order")
    if points * 100 % rules.points_per_yuan:
        raise ValueError(f"points must be worth whole fen ({rules.points_per_yuan} points = ¥1)")
    return Deduction(points=points, value_fen=points * 100 // rules.points_per_yuan, max_points=most)


def referral_stands(first_amount_fen: int, refunded_fen: int, qualifying_fen: int) -> bool:
    """Whether the referrer keeps the reward for a referred member's first purchase.

    The reward pays for bringing in a buying customer, so it stands while what is
    kept of the first purchase (paid minus refunded) is still a qualifying purchase:
    at least ``qualifying_fen`` (the lowest tier's threshold, ¥1 in the default
    program: what makes a buyer a member), or the whole first purchase if that was
    smaller. A full refund always takes it back; a partial refund takes it back
    only when it leaves less than that, so refunding ¥99.99 of ¥100 costs a farmer
    exactly what an honest minimum purchase costs.
    """
    if first_amount_fen <= 0 or not 0 <= refunded_fen <= first_amount_fen:
        raise ValueError("refunded must be between 0 and the amount paid")
    kept = first_amount_fen - refunded_fen
    return kept > 0 and kept >= min(max(qualifying_fen, 1), first_amount_fen)


# --- line items and campaign boosts (issue 14 §3; docs/campaigns.md) ---------------------------

MAX_LINE_ITEMS = 200


@dataclass(frozen=True)
class LineItem:
    """One line of an order: what was bought (SKU, category) and what was paid for it, in fen."""

    sku: str | None
    category: str | None
    amount: int


def line_items_problem(order_amount: int, lines: Sequence[LineItem]) -> str | None:
    """Why ``lines`` cannot describe an order of ``order_amount`` fen, or None.

    The rule: line amounts are what was paid per line (after discounts), each at least 1 fen, and
    they add up to the order amount exactly (shipping, if it is paid, is a line of its own). SKUs
    are unique within an order, so a refund can name the line it returns.
    """
    if not 1 <= len(lines) <= MAX_LINE_ITEMS:
        return f"an order has 1 to {MAX_LINE_ITEMS} line items"
    if any(line.amount <= 0 for line in lines):
        return "every line item's amount must be positive"
    skus = [line.sku for line in lines if line.sku is not None]
    if len(set(skus)) != len(skus):
        return "a SKU appears on two line items; give each SKU one line"
    total = sum(line.amount for line in lines)
    if total != order_amount:
        return f"line items add up to {total} fen, but the order amount is {order_amount} fen"
    return None


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` into integer shares proportional to ``weights`` (largest remainder).

    The shares add up to ``total`` exactly, a zero weight gets nothing, and no share differs from
    its exact proportion by one or more. Ties in the remainders go to the earlier weight, so the
    split is deterministic.
    """
    if total < 0 or any(w < 0 for w in weights):
        raise ValueError("total and weights must not be negative")
    whole = sum(weights)
    if whole == 0:
        if total:
            raise ValueError("cannot allocate a positive total over zero weights")
        return [0] * len(weights)
    shares = [total * w // whole for w in weights]
    left = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[:left]:
        shares[i] += 1
    return shares


@dataclass(frozen=True)
class Boost:
    """A campaign's earning boost: matching lines paid inside [starts_at, ends_at) earn
    ``multiplier_percent`` of the regular rate; the part above 100% is the campaign's bonus.
    No categories and no SKUs: every line (the whole order) matches."""

    campaign_id: str
    multiplier_percent: int
    starts_at: datetime
    ends_at: datetime
    categories: frozenset[str] = frozenset()
    skus: frozenset[str] = frozenset()

    def matches(self, line: LineItem) -> bool:
        if not self.categories and not self.skus:
            return True
        return (line.sku is not None and line.sku in self.skus) or (
            line.category is not None and line.category in self.categories
        )

    def active_at(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


@dataclass(frozen=True)
class LineBonus:
    """What the best boost matching one line would give it (before budgets)."""

    campaign_id: str | None
    points: int


def best_boost(line: LineItem, boosts: Sequence[Boost], paid_at: datetime) -> Boost | None:
    """The boost a line gets: the highest multiplier among the active, matching ones (campaigns do not
    stack on one line); a tie goes to the smaller campaign id, so the choice is deterministic."""
    candidates = [b for b in boosts if b.multiplier_percent > 100 and b.active_at(paid_at) and b.matches(line)]
    if not candidates:
        return None
    return min(candidates, key=lambda b: (-b.multiplier_percent, b.campaign_id))


def line_bonuses(
    lines: Sequence[LineItem], boosts: Sequence[Boost], paid_at: datetime, rules: EarningRules
) -> list[LineBonus]:
    """Per line: the campaign bonus it asks for, at the program's regular rate (not the tier's or an
    occasion's multiplier: a campaign's cost must not depend on who buys):

        bonus = floor(line amount × purchase_points × (multiplier − 100%) / (purchase_unit_fen × 100%))
    """
    result = []
    for line in lines:
        boost = best_boost(line, boosts, paid_at)
        if boost is None:
            result.append(LineBonus(None, 0))
            continue
        extra = boost.multiplier_percent - 100
        points = line.amount * rules.purchase_points * extra // (rules.purchase_unit_fen * 100)
        result.append(LineBonus(boost.campaign_id, points))
    return result


def within_budget(
    wanted: int, budget: int | None, spent: int, *, member_cap: int | None = None, member_earned: int = 0
) -> int:
    """What a campaign may still give: ``wanted``, limited by what is left of its budget and of
    its per-member cap; never negative."""
    allowed = max(wanted, 0)
    if budget is not None:
        allowed = min(allowed, budget - spent)
    if member_cap is not None:
        allowed = min(allowed, member_cap - member_earned)
    return max(allowed, 0)


def refund_by_line(lines: Sequence[tuple[int, int]], refund: int) -> list[int]:
    """Spread a refund of ``refund`` fen that names no lines over an order's lines, in proportion to
    what each can still refund. ``lines`` are (amount, refunded so far). No line gets more than it
    can still refund, and the shares add up to ``refund``."""
    remaining = [amount - refunded for amount, refunded in lines]
    if any(r < 0 for r in remaining) or not 0 <= refund <= sum(remaining):
        raise ValueError("cannot refund more than was paid")
    return allocate(refund, remaining)
