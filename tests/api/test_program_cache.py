"""The program cached in process: fresh for reads while the change stream is live, never trusted by writes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateway.core.settings import Environment, Settings
from gateway.domain.program import DEFAULT_PROGRAM
from gateway.events.hub import Hub
from gateway.events.streams import run_watcher
from gateway.ledger import EntryKind, LedgerTx, Memo, Source
from gateway.store.mongo import Database, create_client
from gateway.store.program import PROGRAM_ID, load_program, program_cache, save_program, seed_program
from tests.support.ledger_helpers import add_member, earn

TIERS = "{ tiers { code name } }"


async def set_raw(db: Database, **config_changes: Any) -> None:
    """Change the stored program the way another replica (or an operator's script) would:
    not through this process's save_program, so only the change stream can tell us."""
    await db.program.update_one(
        {"_id": PROGRAM_ID},
        {"$set": {f"config.{k}": v for k, v in config_changes.items()}, "$inc": {"version": 1}},
    )


async def until(condition: Any, what: str, limit: float = 30.0) -> None:
    """Wait for something the change stream delivers; the limit only stops a broken run."""
    deadline = time.monotonic() + limit
    while not await condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.02)


async def test_without_a_live_change_stream_every_read_goes_to_mongodb(db: Database):
    await seed_program(db)
    assert (await load_program(db)).name == DEFAULT_PROGRAM.name
    await set_raw(db, name="Renamed by another replica")
    assert (await load_program(db)).name == "Renamed by another replica"


async def test_a_change_from_another_replica_reaches_reads_through_the_change_stream(db: Database, mongo_uri: str):
    await seed_program(db)
    hub = Hub()
    watcher = asyncio.create_task(run_watcher(db, hub, retry_delay=0.05))
    other_replica = create_client(mongo_uri)
    try:
        await hub.wait_ready()
        cache = program_cache(db)
        assert cache.live
        assert (await load_program(db)).name == DEFAULT_PROGRAM.name
        assert cache.current is not None  # answered from memory from now on

        await set_raw(Database(other_replica, db.db.name), name="Renamed elsewhere")

        async def seen() -> bool:
            return (await load_program(db)).name == "Renamed elsewhere"

        await until(seen, "the other replica's change reaches this process")
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await other_replica.close()
    assert not program_cache(db).live


async def test_a_save_in_this_process_is_seen_by_the_next_read_at_once(db: Database):
    await seed_program(db)
    cache = program_cache(db)
    cache.stream_opened()  # as if the watcher ran: reads trust memory
    try:
        await load_program(db)
        await save_program(db, DEFAULT_PROGRAM.model_copy(update={"name": "Saved here"}))
        assert (await load_program(db)).name == "Saved here"
    finally:
        cache.stream_lost()


async def test_a_read_in_flight_while_the_program_changes_does_not_cache_what_it_read(db: Database):
    await seed_program(db)
    cache = program_cache(db)
    cache.stream_opened()
    try:
        read = asyncio.create_task(load_program(db))
        await asyncio.sleep(0)  # the read is now waiting for MongoDB
        cache.observe({"operationType": "update"})  # the change stream reports a change meanwhile
        await read
        assert cache.current is None, "a read that started before the change must not be trusted after it"
    finally:
        cache.stream_lost()


async def test_a_ledger_write_judges_by_the_program_in_its_transaction_not_the_cached_one(db: Database, services: Any):
    """Even with a stale cache (a change the stream has not reported yet), a write sees the
    stored program: here a negative balance the program now allows."""
    await seed_program(db)
    await add_member(services, "m1")
    await earn(services.ledger, "m1", 10)
    cache = program_cache(db)
    cache.stream_opened()  # live, but nothing will report the change below
    try:
        assert not (await load_program(db)).allow_negative_balance
        await set_raw(db, allow_negative_balance=True)
        assert not (await load_program(db)).allow_negative_balance, "reads answer from the (stale) cache"

        async def refund(tx: LedgerTx) -> dict[str, Any]:
            entry = await tx.take_back("m1", 50, Memo(EntryKind.REFUND, "test", Source("TEST", "refund")), lot_ids=[])
            return {"shortfall": entry.get("shortfall", 0)}

        result = await services.ledger.transact(refund)
        assert result["shortfall"] == 0, "the refund judged by the stored program: debt allowed"
        member = await db.members.find_one({"_id": "m1"})
        assert member["balances"]["available"] == -40
    finally:
        cache.stream_lost()


async def test_a_transaction_reuses_the_parsed_program_only_for_the_same_configuration(db: Database):
    await seed_program(db)

    async def read(session: Any) -> Any:
        return await load_program(db, session=session)

    first = await db.transaction(read)
    assert await db.transaction(read) is first  # same stored configuration: parsed once
    await set_raw(db, name="Changed")
    changed = await db.transaction(read)
    assert changed is not first and changed.name == "Changed"


@pytest.mark.parametrize(
    ("environment", "override", "expected"),
    [
        (Environment.DEVELOPMENT, None, True),
        (Environment.PRODUCTION, None, False),
        (Environment.PRODUCTION, True, True),
        (Environment.DEVELOPMENT, False, False),
    ],
)
def test_access_log_is_off_by_default_in_production(environment, override, expected, tmp_path):
    settings = Settings(environment=environment, access_log=override, jwt_secret="x" * 32, data_dir=tmp_path)
    assert settings.access_log_enabled is expected


async def test_responses_carry_non_ascii_as_utf8(http):
    response = await http.post("/graphql", json={"query": TIERS})
    assert "至尊".encode() in response.content
    assert response.json()["data"]["tiers"][-1]["name"] == "Supreme VIP 至尊VIP"
