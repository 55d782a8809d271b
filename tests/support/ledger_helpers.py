"""Direct ledger moves for tests that exercise the ledger core below GraphQL."""

from __future__ import annotations

from datetime import datetime

from gateway.domain.program import DEFAULT_PROGRAM
from gateway.features.members import Registration, new_member_document
from gateway.ledger import EntryKind, Idempotency, Ledger, LedgerTx, Memo, Source
from gateway.services import Services
from gateway.store.mongo import Document


async def add_member(services: Services, member_id: str) -> Document:
    doc = new_member_document(
        Registration(display_name=member_id, member_id=member_id), DEFAULT_PROGRAM, services.clock.now()
    )
    return await services.members.insert(doc)


async def earn(
    ledger: Ledger,
    member_id: str,
    points: int,
    *,
    available_at: datetime | None = None,
    key: str | None = None,
    source_id: str = "test",
) -> Document:
    async def work(tx: LedgerTx) -> Document:
        entry = await tx.earn(
            member_id, points, Memo(EntryKind.GRANT, "test", Source("TEST", source_id)), available_at=available_at
        )
        return {"entryId": entry["_id"]}

    idem = Idempotency(f"test:{member_id}", key, {"op": "earn", "points": points}) if key else None
    return await ledger.transact(work, idempotency=idem)


async def spend(ledger: Ledger, member_id: str, points: int, *, key: str | None = None) -> Document:
    async def work(tx: LedgerTx) -> Document:
        entry = await tx.spend(member_id, points, Memo(EntryKind.DEDUCTION, "test", Source("TEST", "s")))
        return {"entryId": entry["_id"]}

    idem = Idempotency(f"test:{member_id}", key, {"op": "spend", "points": points}) if key else None
    return await ledger.transact(work, idempotency=idem)
