"""Daily check-in (签到): once per local day, with streak bonuses and growth; one ledger transaction."""

from __future__ import annotations

from datetime import date

from gateway.core.auth import Principal
from gateway.core.errors import DomainError
from gateway.domain import calendar
from gateway.domain import earning as rules
from gateway.features.rule_earning import earn_by_rule
from gateway.features.tiering import add_growth, reevaluate
from gateway.ledger import EntryKind, Idempotency, Ledger, LedgerTx, Memo, Source
from gateway.store import members
from gateway.store.mongo import Document


class AlreadyCheckedIn(DomainError):
    code = "ALREADY_CHECKED_IN"


class CheckIns:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def check_in(self, principal: Principal, member_id: str, key: str | None) -> Document:
        """Once per local day; a replayed key returns the original check-in, a new one is refused."""
        idem = Idempotency.for_caller(principal, key, "checkIn", memberId=member_id) if key else None

        async def work(tx: LedgerTx) -> Document:
            member = await tx.member(member_id)
            today = calendar.local_date(tx.now, tx.program.timezone)
            state = member.get("checkIn") or {}
            last = date.fromisoformat(state["lastDay"]) if state.get("lastDay") else None
            outcome = rules.check_in(last, state.get("streak", 0), today, tx.program.earning)
            if outcome is None:
                raise AlreadyCheckedIn("Already checked in today", day=today.isoformat())
            earned = await earn_by_rule(
                tx,
                member_id,
                "CHECK_IN",
                outcome.points,
                Memo(
                    EntryKind.CHECK_IN,
                    f"Check-in, day {outcome.streak} of the streak",
                    Source("RULE", "CHECK_IN"),
                    {"streak": outcome.streak, "streakBonus": outcome.bonus},
                ),
            )
            await members.set_check_in(tx.db, member_id, today.isoformat(), outcome.streak, session=tx.session)
            await add_growth(
                tx, member_id, tx.program.growth.check_in, reason="Check-in", source={"type": "RULE", "id": "CHECK_IN"}
            )
            await reevaluate(tx, member_id, reason="Growth from check-in", allow_down=False)
            return {
                "memberId": member_id,
                "streak": outcome.streak,
                "bonus": outcome.bonus,
                "points": earned.points,
                "capped": earned.capped,
                "entryIds": [earned.entry["_id"]] if earned.entry else [],
            }

        return await self.ledger.transact(work, idempotency=idem)
