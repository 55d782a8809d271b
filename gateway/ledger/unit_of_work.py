"""The unit of work: one MongoDB transaction per business action, at most once per idempotency key.

``Ledger.transact(work)`` opens a transaction, hands ``work`` a ``LedgerTx`` (the program in
force, the instant, the session) and commits everything ``work`` wrote, points and the rest
(stock, orders, the idempotency record), or nothing. Write conflicts (two transactions on
one member) are retried by ``Database.transaction``; the committed entries are counted once,
after commit. ``transact_many`` runs several idempotent operations in one transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from gateway.core.clock import Clock
from gateway.core.errors import DomainError
from gateway.core.metrics import record_committed
from gateway.ledger.idempotency import Idempotency
from gateway.ledger.posting import LedgerTx
from gateway.store import holds as holds_store
from gateway.store import idempotency as idempotency_store
from gateway.store import ledger as ledger_store
from gateway.store.mongo import Database, Document
from gateway.store.program import Along, load_program, load_program_along

Work = Callable[[LedgerTx], Awaitable[Document]]


class Ledger:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def transact(
        self, work: Work, *, idempotency: Idempotency | None = None, along: dict[Any, Along] | None = None
    ) -> Document:
        """Run ``work`` in one transaction; with ``idempotency``, at most once per key.

        ``work`` returns a small document (ids of what it made) that is stored with
        the idempotency record, so a replay returns the original result. ``along``: reads
        the work will need, made in the program's round trip; the documents of each are in
        ``tx.scratch`` under its key.
        """
        if idempotency is None:
            return await self._run(work, None, along)
        idempotency = idempotency.validated()
        # No read before the work: a first request (nearly all of them) pays nothing for its
        # key. The record is written in the same transaction as the work, so a repeat either
        # meets the unique key (its work rolled back with it) or is refused by a rule the first
        # request changed (ALREADY_DEDUCTED, OUT_OF_STOCK...): only then is the record read,
        # and a recorded request replays its first result (or is a conflict) instead.
        try:
            return await self._run(work, idempotency, along)
        except (DuplicateKeyError, DomainError):
            record = await idempotency_store.find_record(self.db, idempotency.record_id)
            if record is None:
                raise
            return idempotency.replay(record)

    async def _run(self, work: Work, idempotency: Idempotency | None, along: dict[Any, Along] | None) -> Document:
        attempts: list[LedgerTx] = []

        async def attempt(session: AsyncClientSession) -> Document:
            tx = await self._begin(session, along)
            tx.idempotency_key = idempotency.key if idempotency else None
            attempts.append(tx)
            result = await work(tx)
            tx.check_applied()
            if idempotency is not None:
                await idempotency_store.insert_records(self.db, [idempotency.record(result, tx.now)], session)
            return result

        result = await self.db.transaction(attempt)
        record_committed(attempts[-1].entries)
        return {**result, "replayed": False}

    async def transact_many(
        self, steps: list[tuple[Work, Idempotency]], *, along: dict[Any, Along] | None = None
    ) -> list[Document]:
        """Several idempotent operations in ONE transaction, in order; each keeps its own
        idempotency record, so each replays on its own later. Steps already recorded are
        replayed from their records and not run again. The transaction writes behind
        (``LedgerTx.write_behind``): the steps' entries, lots and inserts go out together.
        ``along`` as for ``transact``.

        All or nothing: if any step fails (a DomainError, a concurrent duplicate), nothing of
        the others commits either and the error propagates; a caller that wants each
        operation to stand alone then applies them one by one (``transact``).
        """
        steps = [(work, idempotency.validated()) for work, idempotency in steps]
        recorded = await idempotency_store.find_records(self.db, [i.record_id for _, i in steps])
        results: list[Document | None] = []
        pending: list[tuple[int, Work, Idempotency]] = []
        for index, (work, idempotency) in enumerate(steps):
            record = recorded.get(idempotency.record_id)
            if record is None:
                results.append(None)
                pending.append((index, work, idempotency))
                continue
            results.append(idempotency.replay(record))
        if not pending:
            return [r for r in results if r is not None]
        attempts: list[LedgerTx] = []

        async def attempt(session: AsyncClientSession) -> list[Document]:
            tx = await self._begin(session, along)
            tx.write_behind = True
            attempts.append(tx)
            done: list[Document] = []
            for _, work, idempotency in pending:
                tx.idempotency_key = idempotency.key
                done.append(await work(tx))
            await tx.flush()
            tx.check_applied()
            await idempotency_store.insert_records(
                self.db,
                [i.record(result, tx.now) for (_, _, i), result in zip(pending, done, strict=True)],
                session,
            )
            return done

        done = await self.db.transaction(attempt)
        record_committed(attempts[-1].entries)
        for (index, _, _), result in zip(pending, done, strict=True):
            results[index] = {**result, "replayed": False}
        return [r for r in results if r is not None]

    async def _begin(self, session: AsyncClientSession, along: dict[Any, Along] | None) -> LedgerTx:
        """The transaction's handle: the program of its snapshot (and the ``along`` reads with it)."""
        if not along:
            return LedgerTx(self.db, session, await load_program(self.db, session=session), self.clock.now())
        program, found = await load_program_along(self.db, list(along.values()), session)
        return LedgerTx(self.db, session, program, self.clock.now(), scratch=dict(zip(along, found, strict=True)))

    async def settle(self, member_id: str) -> list[Document]:
        """Release and expire what is due for one member; returns the entries written."""

        async def work(tx: LedgerTx) -> Document:
            await tx.member(member_id, settle=True)
            return {"entryIds": [e["_id"] for e in tx.entries]}

        result = await self.transact(work)
        return await self.entries(result["entryIds"])

    async def due_holds(self, now: datetime, limit: int) -> list[Document]:
        """Holds still HELD at or past their deadline, oldest deadline first."""
        return await holds_store.due(self.db, now, limit)

    async def entries(self, entry_ids: list[Any]) -> list[Document]:
        return await ledger_store.entries(self.db, entry_ids)
