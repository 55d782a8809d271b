"""The admin audit log: entries commit with their action, read back newest first, and verify."""

from __future__ import annotations

import pytest

from gateway.core.auth import Principal, Role
from gateway.core.errors import Forbidden
from gateway.domain.admin_audit import AuditAction
from gateway.features.admin_audit import AuditQuery
from gateway.services import Services

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
    import asyncio

    audit = services.admin_audit
    await asyncio.gather(
        *(audit.record(OPS, AuditAction.POINTS_GRANT, "member", f"m{n}", {"points": n}) for n in range(20))
    )
    entries = await audit.search(AuditQuery(), limit=50)
    assert sorted(e["seq"] for e in entries) == list(range(1, 21))
    assert await audit.verify() is None
