"""Earning through a rule, inside a ledger transaction, under the rule's per-member caps.

Every entry earned by a rule carries ``rule`` (PURCHASE, CHECK_IN, REFERRAL,
REVIEW...) and ``ruleEarned`` (what the rule credited), so the caps count what
a member earned by that rule today and this month in the program's timezone.
Refunds do not give cap room back: the cap limits issuance, not holdings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.domain.calendar import Period, day_start, local_date, period_bounds
from gateway.domain.earning import capped
from gateway.ledger import LedgerTx, Memo
from gateway.store import ledger as ledger_store
from gateway.store.mongo import Document


async def earned_by_rule(tx: LedgerTx, member_id: str, rule: str) -> tuple[int, int]:
    """Points the member earned by ``rule`` today and this month (local time)."""
    tz = tx.program.timezone
    today = local_date(tx.now, tz)
    month_start, _ = period_bounds(today, Period.MONTH)
    return await ledger_store.earned_by_rule(
        tx.db,
        member_id,
        rule,
        since=day_start(month_start, tz),
        today_from=day_start(today, tz),
        session=tx.session,
    )


@dataclass(frozen=True)
class RuleEarning:
    requested: int
    points: int
    entry: Document | None

    @property
    def capped(self) -> bool:
        return self.points < self.requested


async def earn_by_rule(
    tx: LedgerTx,
    member_id: str,
    rule: str,
    points: int,
    memo: Memo,
    *,
    available_at: datetime | None = None,
) -> RuleEarning:
    """Credit up to ``points`` by ``rule``, limited by its caps; no entry when nothing is left."""
    await tx.member(member_id)
    cap = tx.program.earning.caps.get(rule)
    allowed = points
    if cap is not None and points > 0:
        today, month = await earned_by_rule(tx, member_id, rule)
        allowed = capped(points, cap, earned_today=today, earned_this_month=month)
    if allowed <= 0:
        return RuleEarning(requested=points, points=0, entry=None)
    entry = await tx.earn(
        member_id,
        allowed,
        memo.adding(rule=rule, ruleEarned=allowed, requested=points),
        available_at=available_at,
    )
    return RuleEarning(requested=points, points=allowed, entry=entry)
