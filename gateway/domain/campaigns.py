"""Time-boxed campaigns (营销活动): rules over plain data (docs/campaigns.md).

A campaign boosts purchase earning for some categories or SKUs (or for whole orders) between
its start and its end, and may have a budget in points: once its bonuses have used the budget
up the campaign is EXHAUSTED and gives nothing more, whatever time it is. An operator may move
its end, raise its budget (never below what it already gave) or cancel it; what it boosts and
when it starts are fixed once it has started, so every bonus it gave can be explained by the
campaign as it is stored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gateway.domain.earning import Boost

CODE = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")
MAX_BOOSTS = 20
MAX_CODES = 200  # categories + SKUs of one boost
MAX_MULTIPLIER_PERCENT = 1_000  # 10×: anything above is a typo
MAX_BUDGET = 1_000_000_000
MAX_DURATION = timedelta(days=366)
CLOCK_SKEW = timedelta(minutes=5)  # a campaign "starting now" may name a start a moment ago


class CampaignStatus(StrEnum):
    SCHEDULED = "SCHEDULED"  # not started yet
    ACTIVE = "ACTIVE"  # between start and end, budget left
    EXHAUSTED = "EXHAUSTED"  # its budget is spent: it gives nothing more
    ENDED = "ENDED"  # past its end
    CANCELLED = "CANCELLED"  # stopped by an operator


@dataclass(frozen=True)
class BoostSpec:
    multiplier_percent: int
    categories: tuple[str, ...] = ()
    skus: tuple[str, ...] = ()


@dataclass(frozen=True)
class CampaignSpec:
    """What an operator configures."""

    name: str
    starts_at: datetime
    ends_at: datetime
    boosts: tuple[BoostSpec, ...]
    description: str = ""
    budget_points: int | None = None
    member_cap_points: int | None = None


class CampaignProblem(ValueError):
    """A campaign (or a change to one) that cannot be accepted; ``field`` names the culprit."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def spec_problem(spec: CampaignSpec) -> CampaignProblem | None:
    """Why ``spec`` is not a valid campaign, or None."""
    if not 1 <= len(spec.name.strip()) <= 80:
        return CampaignProblem("name must be 1 to 80 characters", "name")
    if len(spec.description) > 500:
        return CampaignProblem("description must be at most 500 characters", "description")
    if spec.ends_at <= spec.starts_at:
        return CampaignProblem("endsAt must be after startsAt", "endsAt")
    if spec.ends_at - spec.starts_at > MAX_DURATION:
        return CampaignProblem("a campaign lasts at most 366 days", "endsAt")
    if spec.budget_points is not None and not 1 <= spec.budget_points <= MAX_BUDGET:
        return CampaignProblem(f"budgetPoints must be from 1 to {MAX_BUDGET:,}", "budgetPoints")
    if spec.member_cap_points is not None and not 1 <= spec.member_cap_points <= MAX_BUDGET:
        return CampaignProblem(f"memberCapPoints must be from 1 to {MAX_BUDGET:,}", "memberCapPoints")
    if not 1 <= len(spec.boosts) <= MAX_BOOSTS:
        return CampaignProblem(f"a campaign has 1 to {MAX_BOOSTS} boosts", "boosts")
    for boost in spec.boosts:
        if not 100 < boost.multiplier_percent <= MAX_MULTIPLIER_PERCENT:
            return CampaignProblem(
                f"multiplierPercent must be from 101 to {MAX_MULTIPLIER_PERCENT} (200 = double points)",
                "multiplierPercent",
            )
        codes = (*boost.categories, *boost.skus)
        if len(codes) > MAX_CODES:
            return CampaignProblem(f"a boost names at most {MAX_CODES} categories and SKUs", "boosts")
        for code in codes:
            if not CODE.match(code):
                return CampaignProblem("categories and SKUs are 1 to 64 letters, digits or _.:/-", "boosts")
    return None


def status(
    now: datetime,
    starts_at: datetime,
    ends_at: datetime,
    *,
    budget_points: int | None,
    spent_points: int,
    cancelled: bool,
) -> CampaignStatus:
    if cancelled:
        return CampaignStatus.CANCELLED
    if now >= ends_at:
        return CampaignStatus.ENDED
    if budget_points is not None and spent_points >= budget_points:
        return CampaignStatus.EXHAUSTED
    if now < starts_at:
        return CampaignStatus.SCHEDULED
    return CampaignStatus.ACTIVE


def change_problem(
    current: CampaignSpec, spent_points: int, change: CampaignSpec, now: datetime
) -> CampaignProblem | None:
    """Why ``current`` (which gave ``spent_points``) may not become ``change`` now, or None.

    Before its start anything may change. Once started, the boosts and the start are fixed (what a
    member already earned stays explained); the end may move but not into the past, and the
    budget may not drop below what was already given.
    """
    problem = spec_problem(change)
    if problem is not None:
        return problem
    if now >= current.starts_at:
        if change.starts_at != current.starts_at:
            return CampaignProblem("a started campaign keeps its start", "startsAt")
        if change.boosts != current.boosts:
            return CampaignProblem("a started campaign keeps its boosts", "boosts")
        if change.ends_at != current.ends_at and change.ends_at < now:
            return CampaignProblem("endsAt cannot move into the past", "endsAt")
        if change.member_cap_points != current.member_cap_points:
            return CampaignProblem("a started campaign keeps its per-member cap", "memberCapPoints")
    elif change.starts_at < now:
        return CampaignProblem("startsAt cannot move into the past", "startsAt")
    if change.budget_points is not None and change.budget_points < spent_points:
        return CampaignProblem(f"the campaign already gave {spent_points} points", "budgetPoints")
    return None


def boosts_of(campaign_id: str, spec: CampaignSpec) -> list[Boost]:
    """The campaign's boosts as the earning formula takes them."""
    return [
        Boost(
            campaign_id=campaign_id,
            multiplier_percent=b.multiplier_percent,
            starts_at=spec.starts_at,
            ends_at=spec.ends_at,
            categories=frozenset(b.categories),
            skus=frozenset(b.skus),
        )
        for b in spec.boosts
    ]


def usable(boosts: Sequence[Boost], budgets: dict[str, tuple[int | None, int]], cancelled: set[str]) -> list[Boost]:
    """The boosts of campaigns that may still give: not cancelled, budget left."""
    result = []
    for boost in boosts:
        budget, spent = budgets.get(boost.campaign_id, (None, 0))
        if boost.campaign_id in cancelled or (budget is not None and spent >= budget):
            continue
        result.append(boost)
    return result
