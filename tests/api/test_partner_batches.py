"""Several partner events of one member in one transaction: each idempotent, each refused on its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo.errors import DuplicateKeyError

from gateway.core.errors import DomainError
from gateway.domain.exchange import Direction
from gateway.domain.partner_commands import OperationType, PartnerCommand
from gateway.features.audit import audit_all
from gateway.services import Services
from gateway.store import partners as partners_store
from gateway.store.mongo import Database
from gateway.store.program import seed_program
from tests.conftest import JWT_SECRET
from tests.support.commands import CommandLog, logged_services
from tests.support.partner_helpers import add_partner, linked_member

ACCRUE, BURN, CONVERT, REVERSE = OperationType.ACCRUE, OperationType.BURN, OperationType.CONVERT, OperationType.REVERSE


@pytest.fixture
async def counted(
    mongo_uri: str, db: Database, settings: Any, clock: Any
) -> AsyncIterator[tuple[Services, CommandLog]]:
    """Services on the test's database whose client logs every command it sends."""
    async with logged_services(mongo_uri, db, settings, clock, JWT_SECRET) as logged:
        yield logged


async def available(services: Services, member_id: str) -> int:
    member = await services.db.members.find_one({"_id": member_id})
    return member["balances"]["available"]


async def test_a_members_events_apply_in_one_transaction_and_each_replays_on_its_own(counted, db) -> None:
    services, counter = counted
    await add_partner(services, "coffee")
    await linked_member(services, "ann", ("coffee", "C-1"))
    commands = [PartnerCommand(ACCRUE, f"e{i}", "C-1", points=10 * (i + 1)) for i in range(4)]

    counter.commands.clear()
    outcomes = await services.partner_operations.apply_batch("coffee", commands)

    assert [replayed for _, replayed in outcomes] == [False] * 4
    assert counter.commands.count("commitTransaction") == 1
    assert await available(services, "ann") == 100
    again = await services.partner_operations.apply_batch("coffee", commands[1:3])
    assert [replayed for _, replayed in again] == [True, True]
    assert [op["entryId"] for op, _ in again] == [op["entryId"] for op, _ in outcomes[1:3]]
    _, replayed = await services.partner_operations.apply("coffee", commands[3])
    assert replayed
    assert await available(services, "ann") == 100
    assert await db.ledger.count_documents({"memberId": "ann"}) == 4
    assert await audit_all(db) == []


async def test_a_refused_event_in_a_batch_is_refused_alone_and_the_others_apply(services, db) -> None:
    await add_partner(services, "coffee")
    await linked_member(services, "ann", ("coffee", "C-1"))
    commands = [
        PartnerCommand(ACCRUE, "a1", "C-1", points=30),
        PartnerCommand(BURN, "b1", "C-1", points=500),  # more than ann has
        PartnerCommand(ACCRUE, "a2", "C-1", points=5),
        PartnerCommand(ACCRUE, "a3", "C-404", points=5),  # not linked
    ]

    outcomes = await services.partner_operations.apply_batch("coffee", commands)

    assert isinstance(outcomes[1], DomainError) and outcomes[1].code == "INSUFFICIENT_POINTS"
    assert isinstance(outcomes[3], DomainError) and outcomes[3].code == "MEMBER_NOT_LINKED"
    assert [o[1] for o in (outcomes[0], outcomes[2])] == [False, False]  # type: ignore[index]
    assert await available(services, "ann") == 35
    assert await db.ledger.count_documents({"memberId": "ann"}) == 2
    assert await db.idempotency.count_documents({"_id": {"$regex": "b1$|a3$"}}) == 0
    assert await audit_all(db) == []


async def test_a_batch_replaying_an_event_with_changed_content_applies_nothing_of_it(services, db) -> None:
    await add_partner(services, "coffee")
    await linked_member(services, "ann", ("coffee", "C-1"))
    await services.partner_operations.apply("coffee", PartnerCommand(ACCRUE, "a1", "C-1", points=30))
    commands = [PartnerCommand(ACCRUE, "a1", "C-1", points=31), PartnerCommand(ACCRUE, "a2", "C-1", points=5)]

    outcomes = await services.partner_operations.apply_batch("coffee", commands)

    assert isinstance(outcomes[0], DomainError) and outcomes[0].code == "IDEMPOTENCY_CONFLICT"
    assert outcomes[1][1] is False  # type: ignore[index]
    assert await available(services, "ann") == 35
    assert await audit_all(db) == []


async def test_a_batch_writes_each_collection_once_however_many_events_it_holds(counted, db) -> None:
    services, commands = counted
    await seed_program(db)  # as every gateway stores it on start (without it, the link is read apart)
    await add_partner(services, "coffee")
    await linked_member(services, "ann", ("coffee", "C-1"))
    await services.partner_operations.apply("coffee", PartnerCommand(ACCRUE, "e0", "C-1", points=1))
    batch = [PartnerCommand(ACCRUE, f"e{i}", "C-1", points=10 * i) for i in range(1, 6)]

    partner = await services.partners.get("coffee")  # as the consumer's signature check read it

    commands.seen.clear()
    outcomes = await services.partner_operations.apply_batch("coffee", batch, partner=partner)

    assert [replayed for _, replayed in outcomes] == [False] * 5
    assert commands.seen == [
        "find idempotency",  # which events were applied before (none)
        "aggregate program",  # the program, and the member's link with it (once for five events)
        "findAndModify members",  # the lock moves the first event's points
        "update members",  # the other four events' points, together
        "insert ledger",
        "insert lots",
        "insert partner_operations",
        "insert idempotency",
        "commitTransaction",
    ]
    member = await db.members.find_one({"_id": "ann"})
    assert member["balances"]["available"] == 151 and member["ledgerSeq"] == 6
    entries = await db.ledger.find({"memberId": "ann"}).sort("seq", 1).to_list()
    assert [(e["seq"], e["balancesAfter"]["available"]) for e in entries] == [
        (1, 1), (2, 11), (3, 31), (4, 61), (5, 101), (6, 151)
    ]  # fmt: skip
    ops = {f"e{i}": await partners_store.find_operation(db, "coffee", f"e{i}") for i in range(1, 6)}
    assert {e: (op["points"], op["availableAfter"]) for e, op in ops.items()} == {
        "e1": (10, 11), "e2": (20, 31), "e3": (30, 61), "e4": (40, 101), "e5": (50, 151)
    }  # fmt: skip
    assert await audit_all(db) == []


async def test_a_batch_reads_back_what_it_wrote_before_it_commits(counted, db) -> None:
    """A burn spends from a lot an earlier event of the batch made; a reversal finds and undoes
    an operation of the same batch: the held writes go out before those reads."""
    services, counter = counted
    await add_partner(services, "coffee")
    await linked_member(services, "ann", ("coffee", "C-1"))
    batch = [
        PartnerCommand(ACCRUE, "a1", "C-1", points=30),
        PartnerCommand(ACCRUE, "a2", "C-1", points=50),
        PartnerCommand(BURN, "b1", "C-1", points=20),
        PartnerCommand(REVERSE, "r1", original_event_id="a2"),
        PartnerCommand(CONVERT, "c1", "C-1", points=100, direction=Direction.PARTNER_TO_COALITION),
    ]

    counter.commands.clear()
    outcomes = await services.partner_operations.apply_batch("coffee", batch)

    assert [o[1] for o in outcomes] == [False] * 5  # type: ignore[index]
    assert counter.commands.count("commitTransaction") == 1
    ops = {e: await partners_store.find_operation(db, "coffee", e) for e in ("a1", "a2", "b1", "r1", "c1")}
    assert ops["a2"]["reversedBy"] == "r1" and ops["r1"]["points"] == 50
    burn = await db.ledger.find_one({"_id": ops["b1"]["entryId"]})
    assert burn["lots"] == [{"lotId": ops["a1"]["lotIds"][0], "points": 20}]
    lots = {lot["_id"]: lot["remaining"] async for lot in db.lots.find({"memberId": "ann"})}
    assert lots[ops["a1"]["lotIds"][0]] == 10 and lots[ops["a2"]["lotIds"][0]] == 0
    member = await db.members.find_one({"_id": "ann"})
    assert member["balances"]["available"] == 10 + ops["c1"]["points"] and member["ledgerSeq"] == 5
    assert await audit_all(db) == []


async def test_a_batch_that_meets_an_operation_recorded_meanwhile_reports_the_race(services, db) -> None:
    """The batch's operation records go out in one insert; a duplicate among them is still the
    DuplicateKeyError that sends the batch back to one transaction per event."""
    await add_partner(services, "coffee")
    ops = [{"_id": partners_store.operation_id("coffee", f"e{i}"), "eventId": f"e{i}"} for i in range(3)]
    await partners_store.insert_operations(db, ops[1:2])

    with pytest.raises(DuplicateKeyError) as raised:
        await partners_store.insert_operations(db, ops)

    assert partners_store.is_operation_race(raised.value)


async def test_an_accrual_reads_its_link_with_the_program_and_refuses_an_unlinked_ref(counted, db) -> None:
    services, commands = counted
    await seed_program(db)
    await add_partner(services, "coffee")
    await linked_member(services, "ann", ("coffee", "C-1"))
    await services.partner_operations.apply("coffee", PartnerCommand(ACCRUE, "e0", "C-1", points=1))
    partner = await services.partners.get("coffee")

    commands.seen.clear()
    op, replayed = await services.partner_operations.apply(
        "coffee", PartnerCommand(ACCRUE, "e1", "C-1", points=10), partner=partner
    )

    assert not replayed and op["memberId"] == "ann" and op["availableAfter"] == 11
    assert commands.seen == [
        "aggregate program",  # the program of the transaction's snapshot, and the link to C-1
        "findAndModify members",
        "insert ledger",
        "insert lots",
        "insert partner_operations",
        "insert idempotency",
        "commitTransaction",
    ]
    with pytest.raises(DomainError) as refused:
        await services.partner_operations.apply("coffee", PartnerCommand(ACCRUE, "e2", "C-2", points=10))
    assert refused.value.code == "MEMBER_NOT_LINKED"
    assert await partners_store.find_operation(db, "coffee", "e2") is None
    assert await available(services, "ann") == 11
    assert await audit_all(db) == []
