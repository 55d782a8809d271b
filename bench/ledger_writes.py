"""Ledger writes against a bare MongoDB transaction with the same writes, and round trips per operation.

For each operation (a grant, a deduction at checkout, a gift redemption, a partner accrual) the
gateway's service call and a hand-written transaction that makes the same writes (the member's
balances, the lot, the ledger entry, the order or operation record, the idempotency record; the
bare's documents carry fewer fields, about half the bytes, as ``--trace`` prints: with the
grant's and the accrual's padded to the gateway's sizes, once on 2026-11-30, their ratios stayed
within run-to-run noise) run side by side on the same fresh mongod: first one at a time with a
command listener, to count MongoDB round trips per operation (commit included), then
``--concurrency`` at a time on distinct members, for operations per second. Every operation has
its own idempotency key and its own member, so what is measured is the work of one write, not
contention.

    .venv/bin/python -m bench.ledger_writes [--ops 300] [--concurrency 16]
    .venv/bin/python -m bench.ledger_writes --trace   # also print each path's commands, in order
    .venv/bin/python -m bench.ledger_writes --only grant --spy /tmp/grant.txt   # py-spy the gateway's first half

Each row also says how many transaction attempts were retried after a transient error (write
conflicts) per operation, for each path. The rows under an operation ("vs ...") compare the
same gateway run with other hand-written transactions, for the record: without one of the
gateway's writes, and with the read every gateway write transaction makes first (the program
in its own snapshot, which the gateway keeps on purpose; a partner accrual's brings the
partner's link along). The latter shows what the gateway's own machinery costs once the
reads are equal.

The gateway runs as it serves: with the admin audit log's sealer in the background (it chains the
grants' audit entries after they returned). Each of its measurements ends with a seal of what is
still in hand, so that work is counted (trips, time and CPU) against the gateway, never the bare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import bson
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.monitoring import CommandListener, CommandStartedEvent

from bench import spy as bench_spy
from gateway.core.auth import Principal, Role
from gateway.core.clock import SystemClock
from gateway.core.metrics import TRANSACTION_RETRIES
from gateway.core.settings import Settings
from gateway.domain.exchange import Rate
from gateway.domain.partner_commands import OperationType, PartnerCommand
from gateway.domain.partner_terms import PartnerTerms
from gateway.domain.program import DEFAULT_PROGRAM
from gateway.features.audit import audit_all
from gateway.features.catalog import GiftSpec
from gateway.features.grants import post_grant
from gateway.features.members import Registration, new_member_document
from gateway.features.partner_operations import PartnerOperations
from gateway.features.redemptions import RedeemRequest
from gateway.ledger import EntryKind, LedgerTx, Memo, Source, Work
from gateway.runtime import prepare
from gateway.services import Services
from gateway.store.embedded_mongod import EmbeddedMongo
from gateway.store.mongo import Database, create_client

SECRET = "bench-secret-that-is-long-enough-for-hs256"
OPERATOR = Principal(Role.ADMIN, "bench")
COUNTED = 20  # operations per path run one at a time to count round trips
CPU_CLOCK: Any = None  # a CPU, once mongod runs
REUSES_PARTNER = "partner" in inspect.signature(PartnerOperations.apply).parameters  # older gateways read it again
Op = Callable[[int], Awaitable[Any]]
Settle = Callable[[], Awaitable[Any]]


class Counter(CommandListener):
    def __init__(self) -> None:
        self.count = 0
        self.trace: list[str] | None = None  # when set, "command collection" of each command
        self.written = 0  # while tracing: BSON bytes of the documents inserted and the updates sent

    def started(self, event: CommandStartedEvent) -> None:
        self.count += 1
        if self.trace is not None:
            target = event.command.get(event.command_name)
            self.trace.append(f"{event.command_name} {target}" if isinstance(target, str) else event.command_name)
            for part in ("documents", "updates", "update"):
                sent = event.command.get(part)
                if sent is not None:
                    self.written += len(bson.encode({part: sent}))

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


def float_points(member_ids: list[str], points: int) -> Work:
    """Set-up, not measured: points straight into the ledger (a hand grant this large waits for approval)."""

    async def work(tx: LedgerTx) -> dict[str, Any]:
        await post_grant(tx, member_ids, points, Memo(EntryKind.GRANT, "bench float", Source("BENCH", "float")))
        return {}

    return work


def member(i: int) -> str:
    return f"m{i}"


async def seed(services: Services, members: int) -> str:
    """Members with points (SENIOR, so they may redeem), linked to a partner; one gift."""
    await prepare(services.db)
    now = services.clock.now()
    for i in range(members):
        doc = new_member_document(Registration(display_name=member(i), member_id=member(i)), DEFAULT_PROGRAM, now)
        doc["tier"] = "SENIOR"
        await services.members.insert(doc)
    for start in range(0, members, 100):
        ids = [member(i) for i in range(start, min(start + 100, members))]
        await services.ledger.transact(float_points(ids, 100_000))
    await services.partners.create(PartnerTerms(name="Bench", currency_name="Beans", rate=Rate(10, 1)), "bench")
    for i in range(members):
        await services.partner_links.link(Principal(Role.ADMIN, "bench"), member(i), "bench", f"R{i}")
    gift = await services.catalog.create(
        GiftSpec(name="Bench gift", category="bench", cost_price=100, points=10), 10_000_000, DEFAULT_PROGRAM
    )
    return str(gift["_id"])


def gateway_ops(services: Services, gift_id: str, run: str) -> dict[str, Op]:
    async def grant(i: int) -> Any:
        return await services.grants.grant(OPERATOR, [member(i)], 10, "bench", f"{run}-grant-{i}")

    async def deduction(i: int) -> Any:
        return await services.deductions.deduct(
            OPERATOR, member(i), f"{run}-order-{i}", 1_000_000, 10, f"{run}-deduct-{i}"
        )

    async def redemption(i: int) -> Any:
        return await services.redemptions.redeem(OPERATOR, RedeemRequest(member(i), gift_id, 1, f"{run}-redeem-{i}"))

    partner: dict[str, Any] = {}

    async def partner_accrual(i: int) -> Any:
        # As the partner API and the Kafka consumer call it: with the partner document that
        # authentication (or the batch's signature check) already read, when it can.
        command = PartnerCommand(OperationType.ACCRUE, f"{run}-event-{i}", f"R{i}", points=10)
        if not partner and REUSES_PARTNER:
            partner.update(await services.partners.get("bench"))
        return await services.partner_operations.apply("bench", command, **({"partner": partner} if partner else {}))

    return {"grant": grant, "deduction": deduction, "redemption": redemption, "partner accrual": partner_accrual}


def bare_ops(db: Database, gift_id: str, run: str) -> dict[str, Op]:
    """The same writes as the gateway's, in one transaction each, decided without reading."""

    def now() -> datetime:
        return datetime.now(UTC)

    async def member_and_entry(session: Any, i: int, points: int, kind: str) -> ObjectId:
        change = {"available": points, "lifetimeEarned": max(points, 0), "spent": max(-points, 0)}
        after = await db.members.find_one_and_update(
            {"_id": member(i)},
            {"$inc": {"ledgerSeq": 1, **{f"balances.{k}": v for k, v in change.items() if v}}},
            projection={"ledgerSeq": 1},
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        entry_id = ObjectId()
        await db.ledger.insert_one(
            {"_id": entry_id, "memberId": member(i), "seq": after["ledgerSeq"], "kind": kind, "points": points,
             "delta": change, "reason": "bench", "source": {"type": "BENCH", "id": run}, "lots": [],
             "createdAt": now()},
            session=session,
        )  # fmt: skip
        return entry_id

    async def new_lot(session: Any, i: int, entry_id: ObjectId, points: int) -> None:
        at = now()
        await db.lots.insert_one(
            {"memberId": member(i), "entryId": entry_id, "points": points, "remaining": points, "state": "AVAILABLE",
             "availableAt": at, "expiresAt": at + timedelta(days=365), "createdAt": at},
            session=session,
        )  # fmt: skip

    async def take_from_lot(session: Any, i: int, points: int) -> None:
        await db.lots.update_one(
            {"memberId": member(i), "remaining": {"$gte": points}}, {"$inc": {"remaining": -points}}, session=session
        )

    async def read_program(session: Any, link_ref: str | None = None) -> None:
        """What every gateway write transaction reads first: the program in its own snapshot
        (a partner accrual: with the partner's link, in the same round trip)."""
        if link_ref is None:
            await db.program.find_one({"_id": "current"}, session=session)
            return
        link = {"partnerId": "bench", "$or": [{"partnerMemberRef": link_ref}, {"memberId": link_ref}]}
        pipeline: list[dict[str, Any]] = [
            {"$match": {"_id": "current"}},
            {"$lookup": {"from": "partner_links", "pipeline": [{"$match": link}], "as": "along0"}},
        ]
        await (await db.program.aggregate(pipeline, session=session)).to_list()

    async def idempotency(session: Any, key: str) -> None:
        await db.idempotency.insert_one(
            {"_id": f"bare:{key}", "fingerprint": "x", "result": {}, "createdAt": now()}, session=session
        )

    async def audit_entry(session: Any, i: int, entry_id: ObjectId) -> None:
        """The staff action's entry in the admin audit log, as the gateway writes it in the grant's
        transaction (pending: the gateway chains it after the commit, at a cost the bare skips)."""
        await db["adminAudit"].insert_one(
            {"_id": ObjectId(), "action": "points.grant", "actorRole": "admin", "actor": OPERATOR.subject,
             "targetKind": "member", "targetId": member(i), "at": now(),
             "details": {"memberIds": [member(i)], "points": 10, "total": 10, "entryIds": [str(entry_id)]},
             "reason": "bench", "requestId": None, "pending": True},
            session=session,
        )  # fmt: skip

    async def grant(i: int, audited: bool = True, program: bool = False) -> None:
        async def work(session: Any) -> None:
            if program:
                await read_program(session)
            entry_id = await member_and_entry(session, i, 10, "GRANT")
            await new_lot(session, i, entry_id, 10)
            if audited:
                await audit_entry(session, i, entry_id)
            await idempotency(session, f"{run}-grant-{i}")

        await db.transaction(work)

    async def deduction(i: int, hold: bool = True, program: bool = False) -> None:
        async def work(session: Any) -> None:
            if program:
                await read_program(session)
            await take_from_lot(session, i, 10)
            entry_id = await member_and_entry(session, i, -10, "DEDUCTION")
            hold_id = ObjectId()
            if hold:  # a deduction at checkout is a hold, posted by the order's purchase
                await db["holds"].insert_one(
                    {"_id": hold_id, "memberId": member(i), "points": 10, "lots": [], "status": "HELD",
                     "purpose": "CHECKOUT", "source": {"type": "ORDER", "id": f"bare-{run}-{i}"},
                     "expiresAt": now() + timedelta(minutes=30), "holdEntryId": entry_id, "createdAt": now()},
                    session=session,
                )  # fmt: skip
            await db["deductions"].insert_one(
                {"memberId": member(i), "orderId": f"bare-{run}-{i}", "points": 10, "holdId": hold_id,
                 "status": "HELD", "createdAt": now()},
                session=session,
            )  # fmt: skip
            await idempotency(session, f"{run}-deduct-{i}")

        await db.transaction(work)

    async def redemption(i: int, program: bool = False) -> None:
        async def work(session: Any) -> None:
            if program:
                await read_program(session)
            await db["gifts"].find_one_and_update(
                {"_id": gift_id, "stock": {"$gte": 1}}, {"$inc": {"stock": -1, "redeemed": 1}}, session=session
            )
            await take_from_lot(session, i, 10)
            entry_id = await member_and_entry(session, i, -10, "REDEMPTION")
            await db["redemptions"].insert_one(
                {"_id": f"bare-{run}-{i}", "memberId": member(i), "giftId": gift_id, "quantity": 1, "points": 10,
                 "status": "PLACED", "spendEntryId": entry_id, "createdAt": now()},
                session=session,
            )  # fmt: skip
            await idempotency(session, f"{run}-redeem-{i}")

        await db.transaction(work)

    async def partner_accrual(i: int, program: bool = False) -> None:
        async def work(session: Any) -> None:
            if program:
                await read_program(session, f"R{i}")
            entry_id = await member_and_entry(session, i, 10, "PARTNER_ACCRUE")
            await new_lot(session, i, entry_id, 10)
            await db["partner_operations"].insert_one(
                {"_id": f"bare:{run}-event-{i}", "partnerId": "bench", "memberId": member(i), "points": 10,
                 "entryId": entry_id, "createdAt": now()},
                session=session,
            )  # fmt: skip
            await idempotency(session, f"{run}-event-{i}")

        await db.transaction(work)

    return {
        "grant": grant,
        "deduction": deduction,
        "redemption": redemption,
        "partner accrual": partner_accrual,
        # for the record, not the issue's comparison: the same operations without a write the
        # gateway makes, and with the read the gateway makes first (the program in the
        # transaction's snapshot: what remains of the gap once the gateway's machinery is equal)
        "grant w/o audit entry": partial(grant, audited=False),
        "deduction w/o hold": partial(deduction, hold=False),
        "grant + program read": partial(grant, program=True),
        "deduction + program read": partial(deduction, program=True),
        "redemption + program read": partial(redemption, program=True),
        "partner accrual + program and link read": partial(partner_accrual, program=True),
    }


# more baselines, measured alongside, each on members of its own: the bare transaction without
# one of the gateway's writes, and with the program read every gateway write transaction makes
OTHER_BARES = {
    "grant": ("grant w/o audit entry", "grant + program read"),
    "deduction": ("deduction w/o hold", "deduction + program read"),
    "redemption": ("redemption + program read",),
    "partner accrual": ("partner accrual + program and link read",),
}


def serving(services: Services, seal_delay: float | None = None) -> contextlib.AbstractAsyncContextManager[Any]:
    """What a serving gateway runs beside its requests that these writes use: the audit log's
    sealer in the background (a gateway from before it had one seals inline: nothing)."""
    sealer = services.admin_audit.sealer
    if not hasattr(sealer, "in_background"):
        return contextlib.nullcontext()
    return sealer.in_background() if seal_delay is None else sealer.in_background(seal_delay)


def settler(services: Services) -> Settle:
    """Seal what the gateway's sealer still holds: the rest of the operations' work, charged to them."""

    async def settle() -> None:
        await services.admin_audit.sealer.seal(scan=False)

    return settle


async def nothing() -> None:
    pass


async def round_trips(op: Op, counter: Counter, offset: int, settle: Settle = nothing) -> float:
    before = counter.count
    for i in range(COUNTED):
        await op(offset + i)
    await settle()
    return (counter.count - before) / COUNTED


class CPU:
    """CPU seconds this process and mongod spent (steadier than rates on a shared machine)."""

    def __init__(self, mongod_pid: int | None) -> None:
        self.mongod_pid = mongod_pid

    def now(self) -> float:
        spent = sum(os.times()[:2])
        try:
            fields = Path(f"/proc/{self.mongod_pid}/stat").read_text().rsplit(")", 1)[1].split()
            spent += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass  # not Linux: this process only
        return spent


def retries() -> float:
    """Transaction attempts retried so far in this process (write conflicts, mostly)."""
    return TRANSACTION_RETRIES._value.get()


async def rate(
    op: Op,
    ops: int,
    concurrency: int,
    offset: int,
    retried: list[float] | None = None,
    cpu: list[float] | None = None,
    settle: Settle = nothing,
) -> float:
    numbers = iter(range(offset, offset + ops))

    async def worker() -> None:
        for i in numbers:
            await op(i)

    before, spent = retries(), CPU_CLOCK.now()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await settle()
    elapsed = time.perf_counter() - started
    if retried is not None:
        retried.append(retries() - before)
    if cpu is not None:
        cpu.append((CPU_CLOCK.now() - spent) * 1000 / ops)
    return ops / elapsed


PROFILE_BUCKETS = {
    "PyMongo / BSON": ("pymongo/", "bson/"),
    "waiting for the retry lock / backoff": ("_retry_lock", "asyncio/locks.py", "sleep ("),
    "gateway.ledger": ("gateway/ledger/",),
    "gateway.features": ("gateway/features/",),
    "admin audit (hash, canonical JSON)": ("admin_audit.py",),
    "asyncio event loop": ("asyncio/base_events.py:_run_once", "selectors.py"),
}


async def traced(op: Op, counter: Counter, i: int, settle: Settle = nothing) -> str:
    counter.trace, counter.written = [], 0
    try:
        await op(i)
        done = f"{', '.join(counter.trace)} ({counter.written} bytes written)"
        counter.trace = []
        await settle()
        return f"{done}; after it returned: {', '.join(counter.trace)}" if counter.trace else done
    finally:
        counter.trace = None


OPERATIONS = ("grant", "deduction", "redemption", "partner accrual")


async def main(
    ops: int,
    concurrency: int,
    trace: bool = False,
    only: tuple[str, ...] = OPERATIONS,
    spy_out: str = "",
    seal_delay: float | None = None,
) -> None:
    others = max(len(o) for o in OTHER_BARES.values())
    members = (1 + others) * (COUNTED + ops)  # the first share for the measured paths, one per other baseline
    with tempfile.TemporaryDirectory() as tmp:
        mongo = EmbeddedMongo(Path(tmp) / "mongo")
        uri = await mongo.start()
        global CPU_CLOCK
        CPU_CLOCK = CPU(mongo.process.pid if mongo.process is not None else None)
        counter = Counter()
        client = create_client(uri, maxPoolSize=concurrency * 2 + 10, event_listeners=[counter])
        settings = Settings(mongodb_uri=uri, jwt_secret=SECRET, data_dir=Path(tmp))  # type: ignore[arg-type]
        stack = contextlib.AsyncExitStack()
        try:
            # The two paths on twin databases, so the bare writes never touch what the audit checks.
            db, bare_db = Database(client, "bench"), Database(client, "bench_bare")
            services = Services(settings=settings, db=db, clock=SystemClock(), jwt_secret=SECRET)
            gift_id = await seed(services, members)
            bare_services = Services(settings=settings, db=bare_db, clock=SystemClock(), jwt_secret=SECRET)
            bare_gift_id = await seed(bare_services, members)
            rows = []
            await stack.enter_async_context(serving(services, seal_delay))
            settle = settler(services)
            for name in only:
                gateway = gateway_ops(services, gift_id, "g")[name]
                bare = bare_ops(bare_db, bare_gift_id, "b")[name]
                trips = (await round_trips(gateway, counter, 0, settle), await round_trips(bare, counter, 0))
                if trace:  # a run of its own ("t"), so no key or order id repeats a measured one
                    traced_gw = gateway_ops(services, gift_id, "t")[name]
                    traced_bare = bare_ops(bare_db, bare_gift_id, "t")[name]
                    print(f"{name}, gateway: {await traced(traced_gw, counter, 0, settle)}")
                    print(f"{name}, bare:    {await traced(traced_bare, counter, 0)}")
                # alternate the two paths over two halves, so drifting load hits both alike
                half = ops // 2
                g_retried: list[float] = []
                b_retried: list[float] = []
                g_cpu: list[float] = []
                b_cpu: list[float] = []
                spy = bench_spy.start(spy_out) if spy_out else None
                if spy is not None:
                    await asyncio.sleep(1)  # let py-spy attach
                before = counter.count
                g1 = await rate(gateway, half, concurrency, COUNTED, g_retried, g_cpu, settle)
                loaded = (counter.count - before) / half  # the gateway's round trips per operation under load
                if spy is not None:
                    await asyncio.to_thread(bench_spy.stop, spy)
                b1 = await rate(bare, half, concurrency, COUNTED, b_retried, b_cpu)
                other_rows = []
                for k, other in enumerate(OTHER_BARES.get(name, ()), start=1):  # on members of their own
                    other_op = bare_ops(bare_db, bare_gift_id, f"o{k}")[other]
                    first = k * (COUNTED + ops)
                    o_retried: list[float] = []
                    o_cpu: list[float] = []
                    other_trips = await round_trips(other_op, counter, first)
                    o1 = await rate(other_op, half, concurrency, first + COUNTED, o_retried, o_cpu)
                    o2 = await rate(other_op, half, concurrency, first + COUNTED + half, o_retried, o_cpu)
                    other_rows.append((other, other_trips, sum(o_retried) / (2 * half), (o1 + o2) / 2, sum(o_cpu) / 2))
                b2 = await rate(bare, half, concurrency, COUNTED + half, b_retried, b_cpu)
                g2 = await rate(gateway, half, concurrency, COUNTED + half, g_retried, g_cpu, settle)
                retried = (sum(g_retried) / (2 * half), sum(b_retried) / (2 * half))
                g_ms = sum(g_cpu) / 2
                rows.append((name, trips, loaded, retried, (g1 + g2) / 2, (b1 + b2) / 2, (g_ms, sum(b_cpu) / 2)))
                for other, other_trips, other_retried, other_rate, other_ms in other_rows:
                    other_row = (trips[0], other_trips), loaded, (retried[0], other_retried), (g1 + g2) / 2, other_rate
                    rows.append((f"  vs {other}", *other_row, (g_ms, other_ms)))
            problems = await audit_all(db)
        finally:
            await stack.aclose()
            await client.close()
            mongo.stop()
    print(f"ledger writes: {ops} operations per path, {concurrency} concurrent, each on its own member")
    print(
        f"{'operation':44} {'trips gw':>9} {'@load':>6} {'trips bare':>10} {'retries gw':>10} {'retries bare':>12}"
        f" {'gateway/s':>10} {'bare/s':>9} {'ratio':>6} {'cpu ms gw':>10} {'cpu ms bare':>11} {'cpu ratio':>9}"
    )
    for name, (tg, tb), tl, (rg, rb), g, b, (cg, cb) in rows:
        print(
            f"{name:44} {tg:9.1f} {tl:6.1f} {tb:10.1f} {rg:10.2f} {rb:12.2f} {g:10.0f} {b:9.0f} {g / b:6.2f}"
            f" {cg:10.2f} {cb:11.2f} {cb / cg:9.2f}"
        )
    print(
        "(trips: MongoDB round trips per operation, one at a time, and the gateway's under load (@load, its first"
        " half); retries: retried transaction attempts per operation; cpu ms: CPU of this process and mongod per"
        " operation under load, the cpu ratio bare/gateway)"
    )
    print(f"audit: {problems if problems else 'clean'}")
    if spy_out:
        bench_spy.summarize(spy_out, PROFILE_BUCKETS, title="the gateway path")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--trace", action="store_true", help="print the commands of one operation per path")
    parser.add_argument("--only", action="append", choices=OPERATIONS, help="measure only these operations")
    parser.add_argument("--spy", default="", help="py-spy the gateway's first half (raw stacks) into this file")
    parser.add_argument("--seal-delay", type=float, help="seconds the background audit sealer gathers entries")
    args = parser.parse_args()
    only = tuple(args.only or OPERATIONS)
    asyncio.run(main(args.ops, args.concurrency, args.trace, only, args.spy, args.seal_delay))
