"""Tiers over time: growth value, re-evaluation on spend/refund, and the rolling-window job.

A member's tier follows ``program.tier_policy.basis`` (lifetime spend or growth
value). Without ``validity_days`` the qualifying value is the lifetime total;
with it, only what happened inside the rolling window counts (spend from the
``purchases`` collection, growth from ``growth_events``), so a member who stops
buying is downgraded by ``loyalty-gateway reevaluate-tiers``. Purchases only
ever move a tier up; refunds and the scheduled re-evaluation may move it down.
Every change is one ``tier_changes`` document, written in the same transaction
as the member update.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.domain.program import Program, TierBasis
from gateway.domain.tiers import lifetime_value, tier_for
from gateway.features.batches import for_each_in_batches
from gateway.ledger import Ledger, LedgerTx
from gateway.store import members as members_store
from gateway.store.mongo import Database, Document
from gateway.store.program import load_program
from gateway.store.tier_values import growth_since, spend_since


async def add_growth(tx: LedgerTx, member_id: str, points: int, *, reason: str, source: Document) -> None:
    """Growth value (成长值) accrues, is recorded per event (for windows), and is never spent."""
    if points == 0:
        return
    member = await tx.member(member_id)
    member["growth"] = member.get("growth", 0) + points
    event = {"points": points, "reason": reason, "source": source, "at": tx.now}
    await members_store.add_growth(tx.db, member_id, event, tx.session)


async def qualifying_value(db: Database, member: Document, program: Program, now: datetime, session: Any) -> int:
    """The value the tier is judged on: lifetime, or inside the rolling validity window."""
    if program.tier_policy.validity_days is None:
        return lifetime_value(program, lifetime_spend=member.get("lifetimeSpend", 0), growth=member.get("growth", 0))
    return (await windowed_values(db, [member["_id"]], program, now, session))[member["_id"]]


async def windowed_values(
    db: Database, member_ids: list[str], program: Program, now: datetime, session: Any = None
) -> dict[str, int]:
    """``qualifying_value`` under the program's validity window for many members with one
    aggregate (a list of members asking for their next tier), instead of one per member."""
    days = program.tier_policy.validity_days
    if days is None:
        raise ValueError("the program has no validity window: qualifying values need no query")
    since = now - timedelta(days=days)
    sums = growth_since if program.tier_policy.basis is TierBasis.GROWTH else spend_since
    return {member_id: max(value, 0) for member_id, value in (await sums(db, member_ids, since, session)).items()}


@dataclass(frozen=True)
class TierChange:
    from_tier: str
    to_tier: str
    direction: str


async def reevaluate(tx: LedgerTx, member_id: str, *, reason: str, allow_down: bool) -> TierChange | None:
    """Move the (locked) member to the tier their qualifying value reaches; record the change."""
    member = await tx.member(member_id)
    program = tx.program
    value = await qualifying_value(tx.db, member, program, tx.now, tx.session)
    target = tier_for(value, program.tiers)
    ranks = {t.code: i for i, t in enumerate(program.tiers)}
    current = member.get("tier", program.tiers[0].code)
    current_rank = ranks.get(current, -1)
    target_rank = ranks[target.code]
    if target_rank == current_rank or (target_rank < current_rank and not allow_down):
        return None
    direction = "UP" if target_rank > current_rank else "DOWN"
    member["tier"] = target.code
    member["tierSince"] = tx.now
    change = {
        "fromTier": current,
        "toTier": target.code,
        "direction": direction,
        "reason": reason,
        "value": value,
        "at": tx.now,
    }
    await members_store.set_tier(tx.db, member_id, change, tx.session)
    return TierChange(from_tier=current, to_tier=target.code, direction=direction)


@dataclass(frozen=True)
class ReevaluationReport:
    members: int
    upgraded: int
    downgraded: int

    def __str__(self) -> str:
        return f"re-evaluated {self.members} members: {self.upgraded} up, {self.downgraded} down"


async def reevaluate_all(
    db: Database, ledger: Ledger, *, batch_size: int = 500, concurrency: int = 4
) -> ReevaluationReport:
    """Re-evaluate members' tiers (``loyalty-gateway reevaluate-tiers``, and daily in-server).

    With a rolling validity window every member is re-evaluated over it, so members who
    stopped buying are downgraded. Without one, tiers are for life and only members holding
    a tier code the program no longer has (a purchase that raced a tier removal) are moved
    to the tier their value reaches. Member ids stream from a cursor; each member is its own
    transaction, at most ``concurrency`` at once, so a long run never holds a big lock and a
    concurrent purchase simply serializes with that member's re-evaluation.
    """
    program = await load_program(db)
    if program.tier_policy.validity_days is not None:
        member_ids = members_store.ids(db)
    else:
        member_ids = members_store.ids_outside_tiers(db, [t.code for t in program.tiers])
    counts = {"members": 0, "UP": 0, "DOWN": 0}

    async def one(member_id: str) -> None:
        async def work(tx: LedgerTx) -> Document:
            change = await reevaluate(tx, member_id, reason="Periodic re-evaluation", allow_down=True)
            return {"direction": change.direction if change else None}

        result = await ledger.transact(work)
        counts["members"] += 1
        if result["direction"]:
            counts[result["direction"]] += 1

    await for_each_in_batches(member_ids, one, batch_size=batch_size, concurrency=concurrency)
    return ReevaluationReport(members=counts["members"], upgraded=counts["UP"], downgraded=counts["DOWN"])
