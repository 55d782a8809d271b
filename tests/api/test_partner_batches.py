"""Several partner events of one member in one transaction: each idempotent, each refused on its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.core.errors import DomainError
from gateway.domain.partner_commands import OperationType, PartnerCommand
from gateway.features.audit import audit_all
from gateway.services import Services
from gateway.store.mongo import Database, create_client
from tests.api.test_catalog_roundtrips import CommandCounter
from tests.conftest import JWT_SECRET
from tests.support.partner_helpers import add_partner, linked_member

ACCRUE, BURN = OperationType.ACCRUE, OperationType.BURN


@pytest.fixture
async def counted(mongo_uri: str, db: Database, settings: Any, clock: Any) -> AsyncIterator[tuple[Services, Any]]:
    """Services on the test's database whose client reports every command it sends."""
    counter = CommandCounter()
    client = create_client(mongo_uri, event_listeners=[counter])
    yield Services(settings=settings, db=Database(client, db.db.name), clock=clock, jwt_secret=JWT_SECRET), counter
    await client.close()


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
