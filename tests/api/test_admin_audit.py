"""The admin audit log: entries commit with their action, read back newest first, and verify."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.core.auth import Principal, Role
from gateway.core.errors import Forbidden
from gateway.domain.admin_audit import AuditAction, chain_hash
from gateway.domain.program import DEFAULT_PROGRAM
from gateway.features.admin_audit import AuditQuery
from gateway.features.members import Registration, new_member_document
from gateway.services import Services
from gateway.store import admin_audit as store
from gateway.store.mongo import Database, create_client
from tests.conftest import JWT_SECRET
from tests.support.commands import logged_services

OPS = Principal(Role.ADMIN, "ops-1")
SUPPORT = Principal(Role.SUPPORT, "cs-7")


async def test_entries_read_back_newest_first_with_filters(services: Services) -> None:
    audit = services.admin_audit
    await audit.record(OPS, AuditAction.MEMBER_FREEZE, "member", "ann", {"until": None}, reason="chargeback")
    await audit.record(SUPPORT, AuditAction.POINTS_ADJUST, "member", "ann", {"points": 50})
    await audit.record(OPS, AuditAction.CONFIG_CHANGE, "program", "current", {"version": 4})

    newest = await audit.search(AuditQuery(), limit=10)
    assert [e["seq"] for e in newest] == [3, 2, 1]
    assert newest[2]["reason"] == "chargeback" and newest[2]["actorRole"] == "admin"

    about_ann = await audit.search(AuditQuery(target_kind="member", target_id="ann"), limit=10)
    assert [e["action"] for e in about_ann] == ["points.adjust", "member.freeze"]
    by_support = await audit.search(AuditQuery(actor="cs-7"), limit=10)
    assert [e["seq"] for e in by_support] == [2]
    page_two = await audit.search(AuditQuery(), limit=2, before_seq=2)
    assert [e["seq"] for e in page_two] == [1]
    assert await audit.verify() is None


async def test_an_entry_commits_or_aborts_with_its_action(services: Services) -> None:
    audit = services.admin_audit

    async def refused_action(session: object) -> None:
        await audit.record(OPS, AuditAction.MEMBER_ERASE, "member", "bob", session=session)
        raise Forbidden("changed my mind")

    with pytest.raises(Forbidden):
        await services.db.transaction(refused_action)
    assert await audit.search(AuditQuery(), limit=10) == []
    await audit.record(OPS, AuditAction.MEMBER_ERASE, "member", "bob")
    [entry] = await audit.search(AuditQuery(), limit=10)
    assert entry["seq"] == 1 and await audit.verify() is None


async def test_an_entry_edited_in_the_database_is_found(services: Services) -> None:
    audit = services.admin_audit
    for n in range(3):
        await audit.record(OPS, AuditAction.POINTS_GRANT, "member", f"m{n}", {"points": 100})
    await services.db["adminAudit"].update_one({"seq": 2}, {"$set": {"details.points": 1_000_000}})
    assert await audit.verify() == 2


async def test_concurrent_appends_keep_one_chain(services: Services) -> None:
    audit = services.admin_audit
    await asyncio.gather(
        *(audit.record(OPS, AuditAction.POINTS_GRANT, "member", f"m{n}", {"points": n}) for n in range(20))
    )
    entries = await audit.search(AuditQuery(), limit=50)
    assert sorted(e["seq"] for e in entries) == list(range(1, 21))
    assert await audit.verify() is None


async def test_an_entry_left_pending_is_sealed_before_the_log_is_read(services: Services) -> None:
    """A process that died between its action's commit and the seal leaves its entry pending:
    the next reader (or action, or verification) chains it."""
    audit = services.admin_audit
    await audit.record(OPS, AuditAction.MEMBER_FREEZE, "member", "ann")
    await store.append(services.db, audit.entry(OPS, AuditAction.MEMBER_UNFREEZE, "member", "ann"))
    assert await services.db["adminAudit"].count_documents({"pending": True}) == 1
    newest = await audit.search(AuditQuery(), limit=10)
    assert [(e["seq"], e["action"]) for e in newest] == [(2, "member.unfreeze"), (1, "member.freeze")]
    assert await services.db["adminAudit"].count_documents({"pending": True}) == 0
    assert await audit.verify() is None


async def test_two_processes_append_and_seal_one_chain(services: Services, settings: Any, mongo_uri: str) -> None:
    """Each process seals with its own sealer; they meet only on the head, and the chain has no fork."""
    client = create_client(mongo_uri)
    try:
        other = Services(settings=settings, db=Database(client, services.db.db.name), clock=services.clock)
        await services.db.ensure_indexes()

        async def act(where: Services, n: int) -> None:
            async def action(session: object) -> None:
                await where.admin_audit.record(
                    OPS, AuditAction.POINTS_GRANT, "member", f"m{n}", {"n": n}, session=session
                )

            await where.db.transaction(action)

        await asyncio.gather(*(act(services if n % 2 else other, n) for n in range(30)))
        entries = await services.db["adminAudit"].find().sort("seq", 1).to_list()
        assert [e["seq"] for e in entries] == list(range(1, 31))  # every action returned with its entry sealed
        assert sorted(e["details"]["n"] for e in entries) == list(range(30))
        assert await other.admin_audit.verify() is None
    finally:
        await client.close()


async def test_an_entry_made_up_beyond_the_head_is_found(services: Services) -> None:
    audit = services.admin_audit
    for n in range(3):
        await audit.record(OPS, AuditAction.POINTS_GRANT, "member", f"m{n}", {"points": 100})
    [last] = await services.db["adminAudit"].find({"seq": 3}).to_list()
    body = {**last, "details": {"points": 9}}
    forged = {**body, "_id": "forged", "seq": 4, "prevHash": last["hash"], "hash": chain_hash(last["hash"], 4, body)}
    await services.db["adminAudit"].insert_one(forged)  # well chained, but the head never moved to it
    assert await audit.verify() == 4


async def test_a_seal_that_meets_a_mongodb_outage_warns_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An outage is expected, not a bug: the crash drill found the sealer printing a traceback
    when mongod died under load (the actions had committed; their entries stay pending)."""
    from gateway.features.admin_audit import Sealer

    client = create_client("mongodb://127.0.0.1:9/?directConnection=true", serverSelectionTimeoutMS=200)
    try:
        await Sealer(Database(client, "unreachable")).seal_quietly()
    finally:
        await client.close()
    [record] = [r for r in caplog.records if r.name == "gateway.features.admin_audit"]
    assert record.levelname == "WARNING" and "MongoDB unavailable" in record.getMessage()
    assert record.exc_info is None


async def _freeze(services: Services, member_id: str = "ann") -> None:
    """An audited action, as a feature runs one: its entry in its own transaction."""

    async def action(session: object) -> None:
        await services.admin_audit.record(OPS, AuditAction.MEMBER_FREEZE, "member", member_id, session=session)

    await services.db.transaction(action)


async def test_with_the_sealer_in_the_background_an_action_does_not_wait_for_its_seal(
    db: Database, settings: Any, clock: Any, mongo_uri: str
) -> None:
    """In a serving gateway the action's transaction is all it pays: its entry is committed with
    it, pending, and a reader of the log (which seals first) still reads it sealed."""
    async with logged_services(mongo_uri, db, settings, clock, JWT_SECRET) as (services, commands):
        await services.db.ensure_indexes()
        async with services.admin_audit.sealer.in_background(delay=3600):  # no timed pass during the test
            commands.clear()
            await _freeze(services)
            assert "adminAuditHead" not in commands.collections and commands.commands[-1] == "commitTransaction"
            assert await db["adminAudit"].count_documents({"pending": True}) == 1
            [entry] = await services.admin_audit.search(AuditQuery(), limit=10)
            assert (entry["seq"], entry["action"]) == (1, "member.freeze")
            bob = Registration(display_name="Bob", member_id="bob")
            await services.members.insert(new_member_document(bob, DEFAULT_PROGRAM, clock.now()))
            await _freeze(services, "bob")
            export = await services.member_accounts.export(OPS, "bob", "the member asked")
            assert [(a["seq"], a["action"]) for a in export["staffActions"]] == [(2, "member.freeze")]
        assert await services.admin_audit.verify() is None


async def test_the_background_sealer_seals_without_a_reader_and_on_the_way_out(services: Services) -> None:
    """An entry stays pending only until the next pass (``delay`` after it), and leaving the
    background (the app's shutdown) seals what is still in hand, from memory: an entry edited in
    the database while it waited is found, as it is when sealed inline."""
    raw = services.db["adminAudit"]
    async with services.admin_audit.sealer.in_background(delay=0.01):
        await _freeze(services)
        for _ in range(3000):  # no reader: the background pass alone seals it (bounded only against a hang)
            if not await raw.count_documents({"pending": True}):
                break
            await asyncio.sleep(0.01)
        assert [e["seq"] for e in await raw.find().to_list()] == [1]
    async with services.admin_audit.sealer.in_background(delay=3600):
        await _freeze(services, "bob")
        await raw.update_one({"pending": True}, {"$set": {"actor": "someone-else"}})
    assert await raw.count_documents({"pending": True}) == 0
    assert await services.admin_audit.verify() == 2


async def test_entries_a_failed_seal_left_pending_are_still_sealed_from_memory(services: Services) -> None:
    """A pass that fails (MongoDB unreachable) keeps this process's entries in hand, so the next
    pass still chains them as the actions wrote them: an edit made meanwhile breaks the chain
    instead of being sealed as if it were the entry."""
    from gateway.features.admin_audit import Sealer

    unreachable = create_client("mongodb://127.0.0.1:9/?directConnection=true", serverSelectionTimeoutMS=200)
    try:
        sealer = Sealer(Database(unreachable, services.db.db.name))
        erase = services.admin_audit.entry(OPS, AuditAction.MEMBER_ERASE, "member", "ann")
        doc = await store.append(services.db, erase)
        sealer.committed(doc)  # as the action's commit hands it over
        assert not await sealer.seal_quietly(scan=False)
    finally:
        await unreachable.close()
    await services.db["adminAudit"].update_one({"_id": doc["_id"]}, {"$set": {"targetId": "bob"}})
    sealer.db = services.db  # MongoDB is back
    await services.db.ensure_indexes()
    assert await sealer.seal() == 1
    assert await services.admin_audit.verify() == 1


async def test_a_serving_gateway_seals_in_the_background_and_on_shutdown(
    db: Database, settings: Any, clock: Any, mongo_uri: str
) -> None:
    """The app's lifespan runs the sealer in the background with the workers, and its shutdown
    seals what is still pending."""
    from gateway.web.app import create_app

    async with logged_services(mongo_uri, db, settings, clock, JWT_SECRET) as (services, commands):
        app = create_app(settings, services=services, run_workers=True)
        async with app.router.lifespan_context(app):
            commands.clear()
            await _freeze(services)
            assert "adminAuditHead" not in commands.collections  # the action did not wait for its seal
        assert await db["adminAudit"].count_documents({"pending": True}) == 0
        assert [e["seq"] for e in await db["adminAudit"].find().to_list()] == [1]


DIES_BEFORE_ITS_PASS = """
import asyncio, os, sys
from pathlib import Path
from gateway.core.auth import Principal, Role
from gateway.core.settings import Settings
from gateway.domain.admin_audit import AuditAction
from gateway.services import Services
from gateway.store.mongo import Database, create_client

async def main():
    uri, name, secret, data = sys.argv[1:5]
    settings = Settings(mongodb_uri=uri, jwt_secret=secret, data_dir=Path(data))
    services = Services(settings=settings, db=Database(create_client(uri), name))
    audit = services.admin_audit
    async with audit.sealer.in_background(delay=3600):
        for n in range(3):
            async def action(session, n=n):
                await audit.record(Principal(Role.ADMIN, "ops-1"), AuditAction.POINTS_GRANT, "member", f"m{n}",
                                   {"n": n}, session=session)
            await services.db.transaction(action)
        os._exit(0)  # dies with its entries committed and its pass not run: no shutdown, no seal

asyncio.run(main())
"""


async def test_a_process_that_dies_before_its_background_pass_leaves_a_log_the_next_reader_seals(
    services: Services, settings: Any, mongo_uri: str
) -> None:
    import subprocess
    import sys

    await services.db.ensure_indexes()
    await services.admin_audit.record(OPS, AuditAction.MEMBER_FREEZE, "member", "ann")
    args = [mongo_uri, services.db.db.name, JWT_SECRET, str(settings.data_dir)]
    died = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", DIES_BEFORE_ITS_PASS, *args], capture_output=True, text=True, timeout=120
    )
    assert died.returncode == 0, died.stderr
    assert await services.db["adminAudit"].count_documents({"pending": True}) == 3  # committed, never sealed
    report = await services.admin_audit.verification()
    assert (report.entries, report.broken_at) == (4, None)
    entries = await services.admin_audit.search(AuditQuery(), limit=10)
    assert [e["seq"] for e in entries] == [4, 3, 2, 1]
    assert sorted(e["details"]["n"] for e in entries[:3]) == [0, 1, 2]
