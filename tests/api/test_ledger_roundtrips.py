"""A ledger write whose move is known up front locks its member and moves the balances in one write.

Round trips are counted, never timed. The fallbacks (something due to settle, debt to repay,
too few points) take the ordinary path and end exactly as it does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from gateway.core.clock import FrozenClock
from gateway.domain.program import DEFAULT_PROGRAM, ExpiryMode, ExpiryPolicy
from gateway.features.audit import audit_all
from gateway.ledger import InsufficientPoints
from gateway.store.mongo import Database
from gateway.store.program import save_program
from tests.conftest import JWT_SECRET
from tests.support.commands import logged_services
from tests.support.ledger_helpers import add_member, earn, spend


@pytest.fixture
async def counted(mongo_uri: str, db: Database, settings: Any, clock: FrozenClock) -> AsyncIterator[Any]:
    async with logged_services(mongo_uri, db, settings, clock, JWT_SECRET) as (services, commands):
        yield services, commands


async def test_an_earn_and_a_spend_write_the_member_once(counted: Any, db: Database) -> None:
    services, commands = counted
    await add_member(services, "m")
    await earn(services.ledger, "m", 100)  # the first one settles (nothing due yet is known)
    commands.seen.clear()
    await earn(services.ledger, "m", 50, key="k1")
    assert commands.seen == [
        "find program",
        "findAndModify members",
        "insert ledger",
        "insert lots",
        "insert idempotency",
        "commitTransaction",
    ]
    commands.seen.clear()
    await spend(services.ledger, "m", 30)
    assert commands.seen == [
        "find program",
        "findAndModify members",
        "findAndModify lots",  # the soonest-expiring lot covers the spend: no read of the others
        "insert ledger",
        "commitTransaction",
    ]
    member = await db.members.find_one({"_id": "m"})
    assert member["balances"]["available"] == 120 and member["ledgerSeq"] == 3
    entries = await db.ledger.find({"memberId": "m"}).sort("seq", 1).to_list()
    assert [(e["seq"], e["balancesAfter"]["available"]) for e in entries] == [(1, 100), (2, 150), (3, 120)]
    assert await audit_all(db) == []


async def test_too_few_points_is_refused_as_before_and_changes_nothing(counted: Any, db: Database) -> None:
    services, _ = counted
    await add_member(services, "m")
    await earn(services.ledger, "m", 10)
    before = await db.members.find_one({"_id": "m"})
    with pytest.raises(InsufficientPoints) as refused:
        await spend(services.ledger, "m", 11)
    assert refused.value.extensions["available"] == 10
    after = await db.members.find_one({"_id": "m"})
    assert (after["balances"], after["ledgerSeq"]) == (before["balances"], before["ledgerSeq"])


async def test_a_member_with_something_due_settles_first(counted: Any, db: Database, clock: FrozenClock) -> None:
    services, commands = counted
    await add_member(services, "m")
    await earn(services.ledger, "m", 40, available_at=clock.now() + timedelta(days=1))  # pending for a day
    await earn(services.ledger, "m", 5)
    clock.advance(timedelta(days=2))  # the pending lot is due: the next write releases it first
    commands.seen.clear()
    await spend(services.ledger, "m", 45)  # needs the released points
    assert commands.seen.count("findAndModify members") == 2  # the one-write lock, undone, then the ordinary lock
    entries = await db.ledger.find({"memberId": "m"}).sort("seq", 1).to_list()
    assert [e["kind"] for e in entries] == ["GRANT", "GRANT", "RELEASE", "DEDUCTION"]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4]
    member = await db.members.find_one({"_id": "m"})
    assert member["balances"]["available"] == 0 and member["balances"]["pending"] == 0
    assert await audit_all(db) == []


async def test_an_earn_that_finds_something_due_is_undone_and_posted_after_the_settlement(
    counted: Any, db: Database, clock: FrozenClock
) -> None:
    services, commands = counted
    await add_member(services, "m")
    await earn(services.ledger, "m", 40, available_at=clock.now() + timedelta(days=1))
    clock.advance(timedelta(days=2))
    commands.seen.clear()
    await earn(services.ledger, "m", 5)  # the one-write lock sees the due release: undone, then settled first
    assert commands.seen[:3] == ["find program", "findAndModify members", "update members"]
    entries = await db.ledger.find({"memberId": "m"}).sort("seq", 1).to_list()
    assert [(e["kind"], e["seq"], e["balancesAfter"]["available"]) for e in entries] == [
        ("GRANT", 1, 0),
        ("RELEASE", 2, 40),
        ("GRANT", 3, 45),
    ]
    member = await db.members.find_one({"_id": "m"})
    assert (member["balances"]["available"], member["balances"]["pending"], member["ledgerSeq"]) == (45, 0, 3)
    assert await audit_all(db) == []


async def remaining(db: Database, member_id: str) -> list[tuple[int, int]]:
    """(points, remaining) of each lot, oldest first."""
    lots = await db.lots.find({"memberId": member_id}).sort("_id", 1).to_list()
    return [(lot["points"], lot["remaining"]) for lot in lots]


async def test_a_spend_the_soonest_lot_cannot_cover_empties_it_then_takes_the_next_soonest(
    counted: Any, db: Database, clock: FrozenClock
) -> None:
    services, commands = counted
    await add_member(services, "m")
    for points in (10, 20, 30):  # three lots, each expiring a day after the one before
        await earn(services.ledger, "m", points)
        clock.advance(timedelta(days=1))
    commands.seen.clear()
    await spend(services.ledger, "m", 25)
    assert commands.seen[2:4] == ["findAndModify lots", "find lots"]  # the soonest gave its 10; the rest read once
    assert await remaining(db, "m") == [(10, 0), (20, 5), (30, 30)]
    [entry] = await db.ledger.find({"memberId": "m", "kind": "DEDUCTION"}).to_list()
    assert [t["points"] for t in entry["lots"]] == [10, 15]
    assert await audit_all(db) == []


async def test_points_that_never_expire_are_spent_last(counted: Any, db: Database, clock: FrozenClock) -> None:
    services, _ = counted
    await add_member(services, "m")
    await save_program(db, DEFAULT_PROGRAM.model_copy(update={"expiry": ExpiryPolicy(mode=ExpiryMode.NEVER)}))
    await earn(services.ledger, "m", 40)  # never expires
    await save_program(db, DEFAULT_PROGRAM)
    clock.advance(timedelta(days=1))
    await earn(services.ledger, "m", 15)  # expires in a year: spent first, though newer
    await spend(services.ledger, "m", 20)
    assert await remaining(db, "m") == [(40, 35), (15, 0)]
    await spend(services.ledger, "m", 30)
    assert await remaining(db, "m") == [(40, 5), (15, 0)]
    await save_program(db, DEFAULT_PROGRAM.model_copy(update={"expiry": ExpiryPolicy(mode=ExpiryMode.NEVER)}))
    await spend(services.ledger, "m", 5)  # a program without expiry reads the lots as before
    assert await remaining(db, "m") == [(40, 0), (15, 0)]
    assert await audit_all(db) == []
