"""Behaviours (评价, 晒图, 完善资料...): a configured event earns points under its caps, and growth."""

from __future__ import annotations

from gateway.core.auth import Principal
from gateway.core.errors import BadInput, DomainError, quote
from gateway.features.rule_earning import earn_by_rule
from gateway.features.tiering import add_growth, reevaluate
from gateway.ledger import EntryKind, Idempotency, Ledger, LedgerTx, Memo, Source
from gateway.store.mongo import Document


class EarnCapReached(DomainError):
    code = "EARN_CAP_REACHED"


class Behaviours:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def record(self, principal: Principal, member_id: str, event: str, key: str) -> Document:
        idem = Idempotency.for_caller(principal, key, "recordBehaviour", memberId=member_id, event=event)

        async def work(tx: LedgerTx) -> Document:
            points = tx.program.earning.behaviours.get(event)
            if points is None:
                known = ", ".join(sorted(tx.program.earning.behaviours))
                raise BadInput(f"Unknown behaviour event {quote(event)} (known: {known})", field="event")
            await tx.member(member_id)
            memo = Memo(EntryKind.BEHAVIOUR, f"Behaviour {event}", Source("RULE", event))
            earned = await earn_by_rule(tx, member_id, event, points, memo)
            if points > 0 and earned.points == 0:
                raise EarnCapReached(f"The earn cap for {event} is reached", rule=event)
            await add_growth(
                tx, member_id, tx.program.growth.behaviour, reason=event, source={"type": "RULE", "id": event}
            )
            await reevaluate(tx, member_id, reason=f"Growth from {event}", allow_down=False)
            return {
                "memberId": member_id,
                "event": event,
                "points": earned.points,
                "capped": earned.capped,
                "entryIds": [earned.entry["_id"]] if earned.entry else [],
            }

        return await self.ledger.transact(work, idempotency=idem)
