"""Recording staff actions in the append-only admin audit log, sealing it, and reading it back.

An action's entry is written in the action's own transaction as pending (one insert: concurrent
actions share no document). Once that transaction commits, the process's ``Sealer`` chains what
is pending after the log's head (gateway/store/admin_audit.py ``seal``). In a serving gateway the
sealer runs in the background (``Sealer.in_background``, entered by the app's lifespan with the
workers): the action returns without waiting, and one pass at most ``SEAL_DELAY`` later chains
every entry committed meanwhile; shutting down seals what is left. Without it (a CLI command, a
test, a script) the action returns once its entry has its ``seq`` and hash. Either way readers
(the log, the verification, a member's export) seal first, so they always read a sealed log, and
whatever a crashed process left pending is chained before anyone reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from gateway.core.auth import Principal
from gateway.core.clock import Clock
from gateway.core.logs import current_request_id
from gateway.domain.admin_audit import AuditAction, AuditEntry, ChainCheck
from gateway.store import admin_audit as store
from gateway.store.mongo import Database, Document, is_unavailable

T = TypeVar("T")
log = logging.getLogger(__name__)
SEAL_BATCH = 500  # pending entries chained per sealing transaction
# In the background, how long a pass waits after the first entry handed over, gathering the entries
# committed meanwhile into one sealing transaction (its three commands shared by all of them).
SEAL_DELAY = 0.05
SEAL_RETRY = 1.0  # after a failed background pass (MongoDB unavailable), the next one waits this long
# Records one staff action's entry inside the action's transaction: (session, target id, details).
Recorder = Callable[[Any, str, Mapping[str, Any]], Awaitable[Any]]


async def audited(db: Database, audit: Recorder | None, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(session)``: with ``audit`` in one transaction (the change and the entry it
    records commit together, or neither), without it as before (session None)."""
    if audit is None:
        return await work(None)
    return await db.transaction(work)


@dataclass(frozen=True)
class AuditQuery:
    actions: list[str] | None = None
    actor: str | None = None
    target_kind: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Verification:
    entries: int  # the log's length by its head
    broken_at: int | None  # the first sequence number edited, removed or out of order; None: intact


class Sealer:
    """Chains pending entries, one pass at a time in this process (group commit).

    The entries this process's committed actions wrote are chained from memory (their bodies are
    in hand: no read, and an entry edited in the database before its seal no longer matches its
    hash); a *scan* also chains whatever else is pending in the database (another process's, or
    one whose process died before sealing it), as stored. ``seal()`` returns once a pass that
    started after it was called has finished, so it has seen every entry committed before the
    call; callers that arrive while a pass runs share the next one. Sealers of other processes
    meet this one on the head document (a write conflict, retried).

    ``after_commit`` is what an action calls once its transaction committed: it seals there and
    then, or, while ``in_background`` runs, wakes the background loop and returns at once.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = asyncio.Lock()
        self._committed: list[Document] = []  # this process's entries whose actions committed, not yet sealed
        self._started = 0  # passes begun in this process
        self._done = 0  # the number of the last pass that finished
        self._scanned = 0  # the number of the last pass that finished with a scan
        self._must_scan = False  # a pass failed or met another sealer: the next one scans
        self._head: tuple[int, str] | None = None  # the head as the last pass left it
        self._wake: asyncio.Event | None = None  # set while sealing in the background: wakes the loop

    def committed(self, doc: Document) -> None:
        """An entry this process appended whose action has committed: the next pass chains it."""
        self._committed.append(doc)

    async def seal(self, *, scan: bool = True) -> int:
        """Seal this process's committed entries, and with ``scan`` whatever else is pending;
        returns how many entries this call sealed itself."""
        ticket = self._started
        async with self._lock:
            if (self._scanned if scan else self._done) > ticket:  # a pass begun after the call finished
                return 0
            self._started += 1
            number = self._started
            scan = scan or self._must_scan
            total = 0
            try:
                if self._committed:
                    docs, self._committed = self._committed, []
                    try:
                        self._head = await self.db.transaction(
                            lambda session: store.seal_entries(self.db, self._head, docs, session)
                        )
                        total += len(docs)
                    except store.SealConflict:  # another sealer chained some of them: seal as stored
                        self._head, scan = None, True
                    except BaseException:  # not sealed: still chained from memory by the next pass
                        self._committed[:0] = docs
                        raise
                while scan and await store.any_pending(self.db):
                    sealed, self._head = await self.db.transaction(
                        lambda session: store.seal(self.db, self._head, SEAL_BATCH, session)
                    )
                    total += sealed
            except BaseException:
                self._head, self._must_scan = None, True
                raise
            if scan:
                self._scanned, self._must_scan = number, False
            self._done = number
            return total

    async def seal_quietly(self, *, scan: bool = True) -> bool:
        """Seal, and if that fails, leave the entries pending for the next pass (the actions
        themselves stand: a reader, the verification or the next action seals them). False: failed."""
        try:
            await self.seal(scan=scan)
        except Exception as exc:  # the action committed: its caller must not hear of a failed seal
            if is_unavailable(exc):  # MongoDB is down: expected, no traceback
                log.warning(
                    "admin audit: sealing failed, MongoDB unavailable (%s); entries stay pending", type(exc).__name__
                )
            else:
                log.warning("admin audit: sealing failed; entries stay pending until the next pass", exc_info=True)
            return False
        return True

    async def after_commit(self) -> None:
        """Entries were handed over (``committed``): seal them now, or let the background loop do it."""
        if self._wake is not None:
            self._wake.set()
            return
        await self.seal_quietly(scan=False)

    @contextlib.asynccontextmanager
    async def in_background(self, delay: float = SEAL_DELAY) -> AsyncIterator[None]:
        """Seal in a background loop while the block runs: actions no longer wait for their seal,
        and a pass ``delay`` after the first entry handed over chains all of them at once. On the
        way out the loop finishes its pass, actions seal inline again, and what is left is sealed."""
        wake, stop = asyncio.Event(), asyncio.Event()
        loop = asyncio.create_task(self._background(wake, stop, delay), name="admin-audit-sealer")
        self._wake = wake
        try:
            yield
        finally:
            self._wake = None
            stop.set()
            wake.set()
            await asyncio.gather(loop, return_exceptions=True)
            if self._committed:
                await self.seal_quietly(scan=False)

    async def _background(self, wake: asyncio.Event, stop: asyncio.Event, delay: float) -> None:
        while True:
            await wake.wait()
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):  # gather what commits meanwhile, unless stopping
                    await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return  # the way out seals what is still in hand
            wake.clear()
            if not await self.seal_quietly(scan=False):
                wake.set()  # the entries are still in hand: try again, later
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), SEAL_RETRY)


class AdminAudit:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self.sealer = Sealer(db)

    def entry(
        self,
        actor: Principal,
        action: AuditAction,
        target_kind: str,
        target_id: str,
        details: Mapping[str, Any] | None = None,
        *,
        reason: str | None = None,
    ) -> AuditEntry:
        return AuditEntry(
            action=action,
            actor_role=actor.role.value,
            actor=actor.subject,
            target_kind=target_kind,
            target_id=target_id,
            at=self.clock.now(),
            details=details or {},
            reason=reason,
            request_id=current_request_id(),
        )

    async def record(
        self,
        actor: Principal,
        action: AuditAction,
        target_kind: str,
        target_id: str,
        details: Mapping[str, Any] | None = None,
        *,
        reason: str | None = None,
        session: Any = None,
    ) -> Document:
        """Append one entry. Pass the action's own ``session`` so the entry commits (or not) with it;
        it is sealed once that transaction commits (without a session: once it is written), before
        this returns unless the sealer runs in the background."""
        entry = self.entry(actor, action, target_kind, target_id, details, reason=reason)
        doc = await store.append(self.db, entry, session)

        async def committed() -> None:
            self.sealer.committed(doc)

        # one pass for all the entries of a transaction: it runs after every entry is handed over
        if session is not None and self.db.after_commit(committed) and self.db.after_commit(self.sealer.after_commit):
            return doc
        await committed()
        await self.sealer.after_commit()
        return doc

    def recorder(
        self, actor: Principal, action: AuditAction, target_kind: str, *, reason: str | None = None
    ) -> Recorder:
        """What a feature calls, in its own transaction, once it knows the target and the details."""

        async def record(session: Any, target_id: str, details: Mapping[str, Any]) -> None:
            await self.record(actor, action, target_kind, target_id, details, reason=reason, session=session)

        return record

    async def sealed(self) -> None:
        """Seal everything committed so far, this process's and any other's: what a reader of the
        log calls first (if that fails, it reads what is sealed)."""
        await self.sealer.seal_quietly()

    async def search(self, query: AuditQuery, *, limit: int, before_seq: int | None = None) -> list[Document]:
        """Newest first, everything committed so far (sealed first)."""
        await self.sealed()
        return await store.find(
            self.db,
            limit=limit,
            actions=query.actions,
            actor=query.actor,
            target_kind=query.target_kind,
            target_id=query.target_id,
            since=query.since,
            until=query.until,
            before_seq=before_seq,
        )

    async def verify(self) -> int | None:
        """The sequence number where the chain first breaks, or None when every entry is intact."""
        return (await self.verification()).broken_at

    async def verification(self) -> Verification:
        """Seal what is pending, then stream the whole log through the hash chain (the head read
        first: entries sealed meanwhile are beyond it and not judged)."""
        await self.sealed()
        top = await store.last_seq(self.db)  # read before the head: a sealer moves the head with its entries
        head = await store.head(self.db)
        check = ChainCheck()
        async for doc in store.all_in_order(self.db, up_to=head[0] if head else 0):
            if not check.feed(doc):
                break
        broken_at = check.finish(head)
        length = head[0] if head else 0
        if broken_at is None and top > length:  # an entry made up beyond the head
            broken_at = length + 1
        return Verification(entries=length, broken_at=broken_at)
