"""MongoDB access: the collections, their indexes and the transaction runner."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from typing import Any, TypeVar

import pymongo
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from gateway.core.metrics import TRANSACTION_RETRIES

T = TypeVar("T")
Document = dict[str, Any]

TRANSIENT = "TransientTransactionError"
# True inside a task that holds its Database's retry lock (a nested transaction must not wait for it).
_RETRYING: ContextVar[bool] = ContextVar("loyalty_transaction_retrying", default=False)
# What to run once the transaction running in this task commits (``Database.after_commit``).
_AFTER_COMMIT: ContextVar[list[Callable[[], Awaitable[None]]] | None] = ContextVar("loyalty_after_commit", default=None)
UNKNOWN_COMMIT = "UnknownTransactionCommitResult"

INDEXES: dict[str, list[IndexModel]] = {
    "members": [
        IndexModel([("email", ASCENDING)], unique=True, partialFilterExpression={"email": {"$type": "string"}}),
        IndexModel([("tier", ASCENDING)]),
        IndexModel([("registeredAt", DESCENDING)]),
        # member search (gateway/store/members.py filter_query): one index per criterion, each
        # ending in the list's order so a single-criterion page needs no in-memory sort
        IndexModel([("registeredAt", DESCENDING), ("_id", DESCENDING)]),
        IndexModel([("lifetimeSpend", DESCENDING), ("_id", DESCENDING)]),
        IndexModel([("tier", ASCENDING), ("registeredAt", DESCENDING), ("_id", DESCENDING)]),
        IndexModel([("rfm.segment", ASCENDING), ("registeredAt", DESCENDING), ("_id", DESCENDING)]),
        IndexModel([("search.name", ASCENDING)]),
        IndexModel([("search.phone", ASCENDING)], sparse=True),
    ],
    "grantRequests": [
        IndexModel([("status", ASCENDING), ("requestedAt", DESCENDING), ("_id", DESCENDING)]),
        IndexModel([("requestedBy.subject", ASCENDING), ("requestedAt", DESCENDING)]),
        IndexModel([("memberIds", ASCENDING), ("requestedAt", DESCENDING)]),
    ],
    "adminAudit": [
        # gateway/store/admin_audit.py: one entry per place in the chain; the entries still to seal
        IndexModel([("seq", ASCENDING)], unique=True, partialFilterExpression={"seq": {"$exists": True}}),
        IndexModel([("pending", ASCENDING), ("_id", ASCENDING)], partialFilterExpression={"pending": True}),
        IndexModel([("action", ASCENDING), ("seq", DESCENDING)]),
        IndexModel([("actor", ASCENDING), ("seq", DESCENDING)]),
        IndexModel([("targetKind", ASCENDING), ("targetId", ASCENDING), ("seq", DESCENDING)]),
        IndexModel([("at", DESCENDING)]),
    ],
    "ledger": [
        IndexModel([("memberId", ASCENDING), ("seq", DESCENDING)], unique=True),
        IndexModel([("createdAt", ASCENDING)]),
        IndexModel([("source.type", ASCENDING), ("source.id", ASCENDING)]),
        IndexModel([("restoredFrom", ASCENDING)], sparse=True),
    ],
    "lots": [
        IndexModel([("memberId", ASCENDING), ("expiresAt", ASCENDING)]),
        IndexModel([("remaining", ASCENDING), ("expiresAt", ASCENDING)]),
        IndexModel([("state", ASCENDING), ("availableAt", ASCENDING)]),
        IndexModel([("source.type", ASCENDING), ("source.id", ASCENDING)]),
    ],
    "idempotency": [IndexModel([("createdAt", ASCENDING)])],
    "holds": [
        IndexModel([("memberId", ASCENDING), ("status", ASCENDING)]),
        IndexModel([("status", ASCENDING), ("expiresAt", ASCENDING)]),
    ],
    "gifts": [IndexModel([("createdAt", ASCENDING), ("_id", ASCENDING)])],
    # gateway/store/coupons.py: one code, one coupon across all pools; the next code to give; an order's codes
    "coupon_codes": [
        IndexModel([("codeHash", ASCENDING)], unique=True),
        IndexModel([("giftId", ASCENDING), ("status", ASCENDING), ("sortExpiry", ASCENDING), ("_id", ASCENDING)]),
        IndexModel([("orderId", ASCENDING)], partialFilterExpression={"orderId": {"$type": "string"}}),
    ],
    "coupon_batches": [IndexModel([("giftId", ASCENDING), ("createdAt", ASCENDING)])],
    "redemptions": [
        IndexModel([("memberId", ASCENDING), ("_id", DESCENDING)]),
        IndexModel([("memberId", ASCENDING), ("giftId", ASCENDING), ("createdAt", ASCENDING)]),
        IndexModel([("giftId", ASCENDING), ("status", ASCENDING)]),
        IndexModel(
            [("paymentReference", ASCENDING)],
            unique=True,
            partialFilterExpression={"paymentReference": {"$type": "string"}},
        ),
        IndexModel([("status", ASCENDING), ("fulfilledAt", ASCENDING)]),
    ],
    "purchases": [
        IndexModel([("memberId", ASCENDING), ("orderId", ASCENDING)], unique=True),
        IndexModel([("memberId", ASCENDING), ("paidAt", DESCENDING)]),
    ],
    "deductions": [IndexModel([("memberId", ASCENDING), ("orderId", ASCENDING)], unique=True)],
    # gateway/store/guard.py: a rate-limit window's counter expires with its window
    "rate_limits": [IndexModel([("expiresAt", ASCENDING)], expireAfterSeconds=0)],
    # APQ registrations are a cache that expires; allow-listed documents have no expiresAt
    "persisted_queries": [IndexModel([("expiresAt", ASCENDING)], expireAfterSeconds=0)],
    "benefit_usages": [IndexModel([("memberId", ASCENDING), ("code", ASCENDING), ("period", ASCENDING)])],
    "growth_events": [IndexModel([("memberId", ASCENDING), ("at", DESCENDING)])],
    "partners": [
        IndexModel(
            [("apiKeyHash", ASCENDING)], unique=True, partialFilterExpression={"apiKeyHash": {"$type": "string"}}
        )
    ],
    "partner_links": [
        IndexModel([("partnerId", ASCENDING), ("partnerMemberRef", ASCENDING)], unique=True),
        IndexModel([("memberId", ASCENDING)]),
    ],
    "partner_link_codes": [
        IndexModel([("codeHash", ASCENDING)], unique=True),
        IndexModel([("expiresAt", ASCENDING)], expireAfterSeconds=0),
    ],
    "partner_link_events": [
        IndexModel([("memberId", ASCENDING), ("at", DESCENDING)]),
        IndexModel([("partnerId", ASCENDING), ("at", DESCENDING)]),
    ],
    "partner_operations": [IndexModel([("partnerId", ASCENDING), ("createdAt", ASCENDING), ("_id", ASCENDING)])],
    "partner_daily": [IndexModel([("partnerId", ASCENDING), ("day", ASCENDING)])],
    "partner_dead_letters": [IndexModel([("at", ASCENDING)])],
    "tier_changes": [IndexModel([("at", ASCENDING)])],
    "member_merges": [IndexModel([("source", ASCENDING)]), IndexModel([("target", ASCENDING), ("at", DESCENDING)])],
    "notifications": [
        IndexModel([("status", ASCENDING), ("nextAttemptAt", ASCENDING)]),
        IndexModel([("createdAt", DESCENDING), ("_id", DESCENDING)]),
        IndexModel([("memberId", ASCENDING), ("createdAt", DESCENDING)]),
    ],
    "campaigns": [IndexModel([("endsAt", ASCENDING), ("startsAt", ASCENDING)])],
    "segment_grants": [
        IndexModel([("createdBy", ASCENDING), ("idempotencyKey", ASCENDING)], unique=True),
        IndexModel([("status", ASCENDING), ("_id", ASCENDING)]),
    ],
    "segment_grant_targets": [IndexModel([("jobId", ASCENDING), ("status", ASCENDING), ("_id", ASCENDING)])],
    "analytics_daily": [IndexModel([("shape", ASCENDING), ("day", ASCENDING)])],
    "analytics_monthly": [IndexModel([("shape", ASCENDING), ("day", ASCENDING)])],
}


# Server answers meaning "no primary here right now": shutting down, stepping down, electing.
UNAVAILABLE_CODES = {91, 189, 10107, 11600, 11602, 13435, 13436}


def is_unavailable(exc: BaseException) -> bool:
    """MongoDB cannot be reached or has no writable primary right now: an outage, not a bug.

    Such errors reach clients as SERVICE_UNAVAILABLE (retry later, with the same
    idempotency key for a mutation); anything else from PyMongo stays a masked internal error.
    """
    if isinstance(exc, ConnectionFailure):
        return True
    return isinstance(exc, OperationFailure) and exc.code in UNAVAILABLE_CODES


async def insert_all(collection: AsyncCollection, docs: list[Document], session: Any = None) -> None:
    """Insert ``docs`` in one round trip (``insert_one`` for one, else one ordered ``insert_many``);
    a duplicate key raises ``DuplicateKeyError`` either way, naming the collection."""
    if len(docs) == 1:
        await collection.insert_one(docs[0], session=session)
        return
    try:
        await collection.insert_many(docs, session=session)
    except BulkWriteError as exc:
        first = (exc.details.get("writeErrors") or [{}])[0]
        if first.get("code") == 11000:
            raise DuplicateKeyError(first.get("errmsg", "duplicate key"), 11000, first) from exc
        raise


def create_client(uri: str, **options: Any) -> AsyncMongoClient:
    from gateway.store.pool_metrics import PoolMetrics

    listeners = [*options.pop("event_listeners", []), PoolMetrics()]
    return AsyncMongoClient(uri, tz_aware=True, event_listeners=listeners, **options)


class Database:
    """One database of the gateway; every service reaches MongoDB through it."""

    def __init__(self, client: AsyncMongoClient, name: str) -> None:
        self._retry_lock = asyncio.Lock()
        self.client = client
        self.db: AsyncDatabase = client.get_database(name)
        self._collections: dict[str, AsyncCollection] = {}

    def __getitem__(self, name: str) -> AsyncCollection:
        # A collection object is immutable and building one is not free: made once per name.
        collection = self._collections.get(name)
        if collection is None:
            collection = self._collections[name] = self.db[name]
        return collection

    @property
    def members(self) -> AsyncCollection:
        return self["members"]

    @property
    def ledger(self) -> AsyncCollection:
        return self["ledger"]

    @property
    def lots(self) -> AsyncCollection:
        return self["lots"]

    @property
    def idempotency(self) -> AsyncCollection:
        return self["idempotency"]

    @property
    def program(self) -> AsyncCollection:
        return self["program"]

    async def ping(self, timeout: float = 0.8) -> bool:
        """Whether MongoDB answers within ``timeout`` seconds (readiness: never hangs)."""
        try:
            with pymongo.timeout(timeout):
                await asyncio.wait_for(self.client.admin.command("ping"), timeout)
        except (PyMongoError, TimeoutError):
            return False
        return True

    async def ensure_indexes(self) -> None:
        for name, models in INDEXES.items():
            await self.db[name].create_indexes(models)

    @staticmethod
    def after_commit(callback: Callable[[], Awaitable[None]]) -> bool:
        """Run ``callback()`` once the transaction this task is running commits: once, however
        often it is registered, in the order of the last registrations. False outside a
        transaction. An attempt that is retried or aborts drops what it registered."""
        callbacks = _AFTER_COMMIT.get()
        if callbacks is None:
            return False
        callbacks.append(callback)
        return True

    async def transaction(
        self,
        work: Callable[[AsyncClientSession], Awaitable[T]],
        *,
        max_seconds: float = 60.0,
    ) -> T:
        """Run ``work`` in a transaction (then what it registered with ``after_commit``)."""
        callbacks: list[Callable[[], Awaitable[None]]] = []
        token = _AFTER_COMMIT.set(callbacks)
        try:
            result = await self._transaction(work, callbacks, max_seconds)
        finally:
            _AFTER_COMMIT.reset(token)
        for callback in reversed(dict.fromkeys(reversed(callbacks))):
            await callback()
        return result

    async def _transaction(
        self,
        work: Callable[[AsyncClientSession], Awaitable[T]],
        callbacks: list[Callable[[], Awaitable[None]]],
        max_seconds: float,
    ) -> T:
        """Run ``work`` in a transaction, retrying transient conflicts with jittered backoff.

        Concurrent writers of one member document meet as write conflicts. The first loser
        in this process takes the retry lock and the others queue behind it, so a crowd of
        spenders drains one retry each instead of conflicting again until the deadline; a
        conflict with another process is retried with jittered backoff. Anything that is not
        a transient error (a DomainError, say) aborts the transaction and propagates unchanged.
        """
        deadline = time.monotonic() + max_seconds
        attempt = 0
        holding: Token[bool] | None = None  # set while this call holds the retry lock
        try:
            async with self.client.start_session() as session:
                while True:
                    attempt += 1
                    try:
                        await session.start_transaction(
                            read_concern=ReadConcern("snapshot"),
                            write_concern=WriteConcern("majority"),
                        )
                        callbacks.clear()
                        try:
                            result = await work(session)
                        except BaseException:
                            if session.in_transaction:
                                await session.abort_transaction()
                            raise
                        await self._commit(session, deadline)
                        return result
                    except (OperationFailure, ConnectionFailure) as exc:
                        if not exc.has_error_label(TRANSIENT) or time.monotonic() > deadline:
                            raise
                        # A write conflict is worth many retries; an outage is not: server selection
                        # already waited, so the client hears SERVICE_UNAVAILABLE in seconds.
                        if isinstance(exc, ServerSelectionTimeoutError) or (is_unavailable(exc) and attempt >= 3):
                            raise
                        TRANSACTION_RETRIES.inc()
                        if holding is None and not _RETRYING.get():
                            # Losers of a conflict retry one at a time in this process: a crowd of
                            # writers on one member drains in one retry each instead of conflicting
                            # again and again until the deadline.
                            await self._retry_lock.acquire()
                            holding = _RETRYING.set(True)
                            continue
                        await asyncio.sleep(random.uniform(0, min(0.2, 0.002 * 2 ** min(attempt, 7))))
        finally:
            if holding is not None:
                _RETRYING.reset(holding)
                self._retry_lock.release()

    @staticmethod
    async def _commit(session: AsyncClientSession, deadline: float) -> None:
        while True:
            try:
                await session.commit_transaction()
                return
            except (OperationFailure, ConnectionFailure) as exc:
                if isinstance(exc, ServerSelectionTimeoutError):
                    raise  # outcome unknown: the client retries with its idempotency key
                if exc.has_error_label(UNKNOWN_COMMIT) and time.monotonic() < deadline:
                    continue
                raise
