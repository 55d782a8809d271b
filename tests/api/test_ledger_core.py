"""The ledger core on the real MongoDB: lots, concurrency, idempotency, settling."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from gateway.core.errors import DomainError, IdempotencyConflict
from gateway.domain.program import DEFAULT_PROGRAM
from gateway.features.audit import audit_all
from gateway.ledger import EntryKind, InsufficientPoints, LedgerTx, Memo, Source
from gateway.store.program import save_program, seed_program
from tests.support.ledger_helpers import add_member, earn, spend


@pytest.fixture
async def member(services, db):
    await seed_program(db)
    await add_member(services, "m1")
    return "m1"


async def balances(services, member_id):
    return (await services.members.get(member_id))["balances"]


async def test_earn_and_spend_move_balances_and_reconcile(services, db, member, clock):
    await earn(services.ledger, member, 500)
    await spend(services.ledger, member, 120)
    assert await balances(services, member) == {
        "available": 380,
        "pending": 0,
        "lifetimeEarned": 500,
        "spent": 120,
        "expired": 0,
        "held": 0,
    }
    assert await audit_all(db) == []


async def test_spend_consumes_the_soonest_expiring_lots_first(services, db, member, clock):
    first = await earn(services.ledger, member, 100)
    clock.advance(timedelta(days=30))
    await earn(services.ledger, member, 100)
    await spend(services.ledger, member, 150)
    lots = [lot async for lot in db.lots.find({"memberId": member}).sort("createdAt", 1)]
    assert [lot["remaining"] for lot in lots] == [0, 50]
    assert lots[0]["entryId"] == first["entryId"]


async def test_hundred_concurrent_spends_never_overdraw(services, db, member):
    await earn(services.ledger, member, 1000)
    results = await asyncio.gather(*(spend(services.ledger, member, 15) for _ in range(100)), return_exceptions=True)
    succeeded = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, InsufficientPoints)]
    assert len(succeeded) == 66 and len(refused) == 34
    assert (await balances(services, member))["available"] == 10
    assert await audit_all(db) == []


async def test_idempotent_replay_and_conflict(services, db, member):
    first = await earn(services.ledger, member, 50, key="k1")
    again = await earn(services.ledger, member, 50, key="k1")
    assert again["entryId"] == first["entryId"] and again["replayed"] is True
    with pytest.raises(IdempotencyConflict):
        await earn(services.ledger, member, 60, key="k1")
    racing = await asyncio.gather(*(earn(services.ledger, member, 7, key="race") for _ in range(20)))
    assert len({r["entryId"] for r in racing}) == 1
    assert (await balances(services, member))["available"] == 57
    assert await audit_all(db) == []


async def test_pending_points_cannot_be_spent_until_the_window_closes(services, db, member, clock):
    await earn(services.ledger, member, 200, available_at=clock.now() + timedelta(days=7))
    assert (await balances(services, member))["pending"] == 200
    with pytest.raises(InsufficientPoints):
        await spend(services.ledger, member, 1)
    clock.advance(timedelta(days=7))
    await spend(services.ledger, member, 150)
    assert await balances(services, member) == {
        "available": 50,
        "pending": 0,
        "lifetimeEarned": 200,
        "spent": 150,
        "expired": 0,
        "held": 0,
    }
    kinds = [e["kind"] async for e in db.ledger.find({"memberId": member}).sort("seq", 1)]
    assert kinds == ["GRANT", "RELEASE", "DEDUCTION"]


async def test_two_settle_runs_at_once_expire_each_lot_once(services, db, member, clock):
    await earn(services.ledger, member, 100)
    await spend(services.ledger, member, 30)
    clock.advance(timedelta(days=366))
    await asyncio.gather(*(services.ledger.settle(member) for _ in range(5)))
    assert (await balances(services, member))["expired"] == 70
    assert await db.ledger.count_documents({"memberId": member, "kind": "EXPIRE"}) == 1
    assert await audit_all(db) == []


async def take_back(services, member_id, points, lot_source="order-1"):
    async def work(tx: LedgerTx):
        lots = [lot["_id"] async for lot in tx.db.lots.find({"source.id": lot_source}, session=tx.session)]
        entry = await tx.take_back(
            member_id, points, Memo(EntryKind.REFUND, "refund", Source("ORDER", lot_source)), lot_ids=lots
        )
        return {"entryId": entry["_id"]}

    result = await services.ledger.transact(work)
    return (await services.ledger.entries([result["entryId"]]))[0]


async def test_refund_of_spent_points_records_the_shortfall(services, db, member):
    await earn(services.ledger, member, 100, source_id="order-1")
    await spend(services.ledger, member, 80)
    entry = await take_back(services, member, 100)
    assert entry["shortfall"] == 80 and entry["points"] == -20
    assert (await balances(services, member))["available"] == 0
    assert await audit_all(db) == []


async def test_refund_may_go_negative_when_the_program_allows_and_is_repaid(services, db, member):
    await save_program(db, DEFAULT_PROGRAM.model_copy(update={"allow_negative_balance": True}))
    await earn(services.ledger, member, 100, source_id="order-1")
    await spend(services.ledger, member, 80)
    entry = await take_back(services, member, 100)
    assert entry["shortfall"] == 0
    assert (await balances(services, member))["available"] == -80
    await earn(services.ledger, member, 50, source_id="later")
    assert (await balances(services, member))["available"] == -30
    assert await audit_all(db) == []


async def test_restore_returns_points_to_their_lots_with_original_expiry(services, db, member, clock):
    await earn(services.ledger, member, 100)
    spent = await spend(services.ledger, member, 60)
    spend_entry = (await services.ledger.entries([spent["entryId"]]))[0]

    async def work(tx: LedgerTx):
        entry = await tx.restore(
            member, spend_entry, Memo(EntryKind.REDEMPTION_CANCEL, "cancel", Source("REDEMPTION", "r1"))
        )
        return {"entryId": entry["_id"]}

    await services.ledger.transact(work)
    assert await balances(services, member) == {
        "available": 100,
        "pending": 0,
        "lifetimeEarned": 100,
        "spent": 0,
        "expired": 0,
        "held": 0,
    }
    assert await audit_all(db) == []


async def test_partial_restores_never_return_more_than_was_spent(services, db, member, clock):
    await earn(services.ledger, member, 100)
    clock.advance(timedelta(days=1))
    await earn(services.ledger, member, 100)
    spent = await spend(services.ledger, member, 150)
    spend_entry = (await services.ledger.entries([spent["entryId"]]))[0]

    async def give(points):
        async def work(tx: LedgerTx):
            entry = await tx.restore(
                member, spend_entry, Memo(EntryKind.DEDUCTION_RETURN, "partial", Source("ORDER", "o")), points=points
            )
            return {"entryId": entry["_id"]}

        return await services.ledger.transact(work)

    await give(60)  # the last take first: the newer lot gets its 50 back, the older 10
    await give(90)
    with pytest.raises(DomainError):
        await give(1)
    assert (await balances(services, member))["available"] == 200
    assert await audit_all(db) == []
