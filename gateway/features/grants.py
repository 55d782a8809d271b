"""Operator grants (送积分) and adjustments: to up to 100 members at once, all or none, with a reason."""

from __future__ import annotations

from gateway.core.auth import Principal
from gateway.core.errors import BadInput
from gateway.ledger import EntryKind, Idempotency, Ledger, LedgerTx, Memo, Source
from gateway.store.mongo import Document

MAX_GRANT_MEMBERS = 100
MAX_GRANT_POINTS = 10_000_000


class Grants:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def grant(self, principal: Principal, member_ids: list[str], points: int, reason: str, key: str) -> Document:
        """All members or none: a negative grant is an adjustment that cannot overdraw."""
        member_ids = list(dict.fromkeys(member_ids))
        if not 1 <= len(member_ids) <= MAX_GRANT_MEMBERS:
            raise BadInput(f"grant to 1 to {MAX_GRANT_MEMBERS} members at once", field="memberIds")
        if points == 0 or abs(points) > MAX_GRANT_POINTS:
            raise BadInput(f"points must be non-zero and at most {MAX_GRANT_POINTS} either way", field="points")
        reason = reason.strip()
        if not 1 <= len(reason) <= 200:
            raise BadInput("reason must be 1 to 200 characters", field="reason")
        idem = Idempotency.for_caller(
            principal, key, "grantPoints", memberIds=sorted(member_ids), points=points, reason=reason
        )
        source = Source("OPERATOR", principal.subject)
        memo = Memo(EntryKind.GRANT, reason, source) if points > 0 else Memo(EntryKind.ADJUSTMENT, reason, source)

        async def work(tx: LedgerTx) -> Document:
            entry_ids = []
            for member_id in member_ids:
                if points > 0:
                    entry = await tx.earn(member_id, points, memo)
                else:
                    entry = await tx.spend(member_id, -points, memo)
                entry_ids.append(entry["_id"])
            return {"memberIds": member_ids, "points": points, "entryIds": entry_ids}

        return await self.ledger.transact(work, idempotency=idem)
