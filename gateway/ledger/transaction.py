"""The points ledger: immutable entries, lots, and balances that always reconcile.

Every change to a member's points happens inside ``Ledger.transact``: one MongoDB
transaction that first locks the member document (so concurrent writers of the
same member serialize instead of losing updates), settles what is due (pending
lots whose return window closed become available, lots past expiry expire),
then moves points. Other writes that belong to the same business action
(stock, orders, idempotency records) go in the same transaction via
``tx.session``, so a change is either wholly applied or not at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from bson import ObjectId
from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from gateway.core.auth import Principal
from gateway.core.clock import Clock, as_utc
from gateway.core.errors import BadInput, DomainError, IdempotencyConflict, member_not_found
from gateway.core.metrics import record_committed
from gateway.domain.expiry import expiry_for
from gateway.domain.holds import HoldAction, HoldRefusal, HoldStatus, transition
from gateway.domain.ledger_rules import NEVER_DUE, Lot, Take, allocate, apply_delta, delta, give_back, net_points
from gateway.domain.program import Program
from gateway.ledger.entries import EntryKind, LotState, Memo, Source
from gateway.store import holds as holds_store
from gateway.store import idempotency as idempotency_store
from gateway.store.mongo import Database, Document
from gateway.store.program import load_program


@dataclass(frozen=True)
class Idempotency:
    """A client's promise that repeating ``key`` means repeating the same request.

    ``scope`` names the caller (so two clients' keys never collide); ``payload``
    is what the request asked for, compared on replay.
    """

    scope: str
    key: str
    payload: dict[str, Any]

    @classmethod
    def for_caller(cls, principal: Principal, key: str, operation: str, **payload: Any) -> Idempotency:
        """Keys are scoped to the caller; the operation name is part of what must match."""
        return cls(
            scope=f"{principal.role.value}:{principal.subject}", key=key, payload={"operation": operation, **payload}
        )

    @property
    def record_id(self) -> str:
        return f"{self.scope}:{self.key}"

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(orjson.dumps(self.payload, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()

    def validated(self) -> Idempotency:
        if not 1 <= len(self.key) <= 200:
            raise BadInput("idempotencyKey must be 1 to 200 characters", field="idempotencyKey")
        return self


class InsufficientPoints(DomainError):
    code = "INSUFFICIENT_POINTS"


def hold_refused(refusal: HoldRefusal, hold: Document) -> DomainError:
    messages = {
        HoldRefusal.HOLD_ALREADY_POSTED: "These held points were already posted",
        HoldRefusal.HOLD_ALREADY_VOIDED: "These held points were already released",
        HoldRefusal.HOLD_EXPIRED: "The hold on these points timed out; they are no longer reserved",
    }
    return DomainError(messages[refusal], code=str(refusal), holdId=str(hold["_id"]), status=hold["status"])


@dataclass
class LedgerTx:
    """One transaction's handle on the ledger. Lock a member before moving their points."""

    db: Database
    session: AsyncClientSession
    program: Program
    now: datetime
    idempotency_key: str | None = None
    members: dict[str, Document] = field(default_factory=dict)
    entries: list[Document] = field(default_factory=list)
    # What the steps of one transaction share (a partner read once for a batch of its events).
    scratch: dict[Any, Any] = field(default_factory=dict)

    async def member(self, member_id: str, *, settle: bool = False) -> Document:
        """Lock the member for this transaction and settle what is due; returns its document.

        The settle queries run only once ``nextDueAt`` has come, or when ``settle``
        asks for them (the expiry job, which finds due lots from the lots themselves).
        """
        if member_id in self.members:
            return self.members[member_id]
        doc = await self.db.members.find_one_and_update(
            {"_id": member_id},
            {"$inc": {"lockVersion": 1}},
            return_document=ReturnDocument.AFTER,
            session=self.session,
        )
        if doc is None:
            raise member_not_found(member_id)
        doc.setdefault("debt", 0)
        self.members[member_id] = doc
        due = doc.get("nextDueAt")
        if settle or due is None or as_utc(due) <= self.now:
            await self._release_due(member_id)
            await self._expire_due(member_id)
            await self._recompute_due(member_id)
        return doc

    async def earn(self, member_id: str, points: int, memo: Memo, *, available_at: datetime | None = None) -> Document:
        """Credit a new lot, expiring per the program; pending until ``available_at`` if that is in the future."""
        if points <= 0:
            raise BadInput("points to earn must be positive", field="points")
        await self.member(member_id)
        expiry = expiry_for(self.now, self.program.expiry, self.program.timezone)
        pending = available_at is not None and available_at > self.now
        self._lower_due(member_id, available_at if pending else None, expiry)
        lot_id = ObjectId()
        change = (
            delta(pending=points, lifetimeEarned=points) if pending else delta(available=points, lifetimeEarned=points)
        )
        entry = await self._post(
            member_id,
            memo,
            change,
            lots=[{"lotId": lot_id, "points": points}],
            extra={"expiresAt": expiry, "availableAt": available_at if pending else self.now, **memo.extra},
        )
        lot = {
            "_id": lot_id,
            "memberId": member_id,
            "entryId": entry["_id"],
            "source": memo.source.document(),
            "points": points,
            "remaining": points,
            "state": LotState.PENDING if pending else LotState.AVAILABLE,
            "availableAt": available_at if pending else self.now,
            "expiresAt": expiry,
            "createdAt": self.now,
        }
        if not pending:
            lot["remaining"] -= await self._pay_debt(member_id, points)
        await self.db.lots.insert_one(lot, session=self.session)
        return entry

    async def spend(self, member_id: str, points: int, memo: Memo) -> Document:
        """Consume available points, soonest-expiring lots first; never below zero."""
        takes = await self._take_available(member_id, points)
        return await self._post(member_id, memo, delta(available=-points, spent=points), lots=takes, extra=memo.extra)

    async def hold(self, member_id: str, points: int, memo: Memo, *, purpose: str, expires_at: datetime) -> Document:
        """Put available points on hold (phase one of a two-phase spend); returns the hold.

        The points leave their lots now, soonest-expiring first, exactly as a spend
        would take them, so nothing else can spend them; ``post_hold`` turns them
        into a spend and ``void_hold`` puts them back into the same lots. ``purpose``
        names the feature that owns the hold (it settles holds that time out).
        """
        takes = await self._take_available(member_id, points)
        entry = await self._post(member_id, memo, delta(available=-points, held=points), lots=takes, extra=memo.extra)
        hold: Document = {
            "_id": ObjectId(),
            "memberId": member_id,
            "points": points,
            "lots": takes,
            "status": str(HoldStatus.HELD),
            "purpose": purpose,
            "source": memo.source.document(),
            "expiresAt": expires_at,
            "holdEntryId": entry["_id"],
            "createdAt": self.now,
        }
        await holds_store.insert(self.db, hold, session=self.session)
        return hold

    async def post_hold(self, hold_id: Any, memo: Memo) -> Document:
        """Phase two, commit: the held points become spent. Refused once the hold's deadline passed."""
        hold = await self._settle_hold(hold_id, HoldAction.POST)
        assert hold is not None
        points = hold["points"]
        entry = await self._post(
            hold["memberId"],
            memo,
            delta(held=-points, spent=points),
            lots=hold["lots"],
            extra={**memo.extra, "holdId": hold["_id"]},
        )
        await self._close_hold(hold, HoldStatus.POSTED, entry)
        return entry

    async def void_hold(self, hold_id: Any, memo: Memo) -> Document | None:
        """Phase two, abort: the held points go back to their lots (original expiry); the
        share of a lot that expired meanwhile lapses. None if the hold was already voided."""
        hold = await self._settle_hold(hold_id, HoldAction.VOID)
        if hold is None:
            return None
        member_id = hold["memberId"]
        returned, lapsed, back = await self._return_to_lots(
            member_id, [Take(t["lotId"], t["points"]) for t in hold["lots"]]
        )
        entry = await self._post(
            member_id,
            memo,
            delta(held=-hold["points"], available=returned, expired=lapsed),
            lots=back,
            extra={**memo.extra, "holdId": hold["_id"], "lapsed": lapsed},
        )
        await self._close_hold(hold, HoldStatus.VOIDED, entry)
        return entry

    async def _settle_hold(self, hold_id: Any, action: HoldAction) -> Document | None:
        """Lock the hold's member, then judge ``action``: the hold to change, None for a no-op."""
        member_id = await holds_store.member_of(self.db, hold_id, session=self.session)
        if member_id is None:
            raise LookupError(f"hold {hold_id!r} is referenced but missing")
        await self.member(member_id)  # serializes every change of this member, the hold's included
        hold = await holds_store.find(self.db, hold_id, session=self.session)
        assert hold is not None
        outcome = transition(HoldStatus(hold["status"]), action, expires_at=as_utc(hold["expiresAt"]), now=self.now)
        if outcome.refusal is not None:
            raise hold_refused(outcome.refusal, hold)
        return hold if outcome.changes else None

    async def _close_hold(self, hold: Document, status: HoldStatus, entry: Document) -> None:
        fields = {"settledAt": self.now, "settleEntryId": entry["_id"]}
        if not await holds_store.close(self.db, hold["_id"], str(status), fields, session=self.session):
            # cannot happen under the member lock; never settle a hold twice
            raise LookupError(f"hold {hold['_id']!r} changed under a locked member")

    async def _take_available(self, member_id: str, points: int) -> list[Document]:
        """Consume available points, soonest-expiring lots first; never below zero."""
        if points <= 0:
            raise BadInput("points to spend must be positive", field="points")
        member = await self.member(member_id)
        available = member["balances"]["available"]
        if available < points:
            raise InsufficientPoints(
                f"Member has {max(available, 0)} available points, {points} needed",
                available=max(available, 0),
                requested=points,
            )
        return await self._consume(member_id, points, {"state": LotState.AVAILABLE})

    async def take_back(self, member_id: str, points: int, memo: Memo, *, lot_ids: list[Any]) -> Document:
        """Reverse earning (a refund): from the lots it created first, then from other
        available points; what is still missing becomes debt if the program allows
        negative balances, else it is recorded on the entry as ``shortfall``.
        """
        if points <= 0:
            raise BadInput("points to take back must be positive", field="points")
        member = await self.member(member_id)
        pending_takes = await self._consume(member_id, points, {"_id": {"$in": lot_ids}, "state": LotState.PENDING})
        from_pending = sum(t["points"] for t in pending_takes)
        own_takes = await self._consume(
            member_id, points - from_pending, {"_id": {"$in": lot_ids}, "state": LotState.AVAILABLE}
        )
        other_takes = await self._consume(
            member_id, points - from_pending - sum(t["points"] for t in own_takes), {"state": LotState.AVAILABLE}
        )
        from_available = sum(t["points"] for t in own_takes + other_takes)
        missing = points - from_pending - from_available
        debt = missing if self.program.allow_negative_balance else 0
        if debt:
            member["debt"] += debt
            await self.db.members.update_one({"_id": member_id}, {"$inc": {"debt": debt}}, session=self.session)
        taken = from_pending + from_available + debt
        change = delta(pending=-from_pending, available=-(from_available + debt), lifetimeEarned=-taken)
        return await self._post(
            member_id,
            memo,
            change,
            lots=pending_takes + own_takes + other_takes,
            extra={**memo.extra, "requested": points, "shortfall": missing - debt},
        )

    async def restore(
        self, member_id: str, spend_entry: Document, memo: Memo, *, points: int | None = None
    ) -> Document:
        """Undo a spend, wholly or ``points`` of it: the points go back to the lots they
        came from, keeping their original expiry. Lots that expired in the meantime give
        their share back as expired (those points would have expired anyway). What earlier
        restores of the same spend returned is read from the ledger, so repeated partial
        restores never return more than was spent.
        """
        await self.member(member_id)
        already: dict[object, int] = {}
        async for earlier in self.db.ledger.find(
            {"memberId": member_id, "restoredFrom": spend_entry["_id"]}, {"lots": 1}, session=self.session
        ):
            for take in earlier["lots"]:
                already[take["lotId"]] = already.get(take["lotId"], 0) + take["points"]
        takes = [Take(t["lotId"], t["points"]) for t in spend_entry["lots"]]
        try:
            back = give_back(takes, already, points)
        except ValueError as exc:
            raise DomainError(str(exc), code="NOTHING_TO_RESTORE") from None
        returned, lapsed, back_docs = await self._return_to_lots(member_id, back)
        change = delta(available=returned, spent=-(returned + lapsed), expired=lapsed)
        return await self._post(
            member_id,
            memo,
            change,
            lots=back_docs,
            extra={**memo.extra, "restoredFrom": spend_entry["_id"], "lapsed": lapsed},
        )

    async def _return_to_lots(self, member_id: str, back: list[Take]) -> tuple[int, int, list[Document]]:
        """Put taken points back into their lots; a lot past its expiry takes nothing back
        (those points lapse). Returns (returned, lapsed, the takes as entry lots)."""
        lots = {
            lot["_id"]: lot
            async for lot in self.db.lots.find({"_id": {"$in": [t.lot_id for t in back]}}, session=self.session)
        }
        returned, lapsed = 0, 0
        for take in back:
            lot = lots[take.lot_id]
            if lot["expiresAt"] is not None and as_utc(lot["expiresAt"]) <= self.now:
                lapsed += take.points
                continue
            returned += take.points
            self._lower_due(member_id, lot["expiresAt"])
            await self.db.lots.update_one(
                {"_id": lot["_id"]}, {"$inc": {"remaining": take.points}}, session=self.session
            )
        back_docs = [{"lotId": t.lot_id, "points": t.points} for t in back]
        if returned:
            await self._pay_debt(member_id, returned, lot_takes=back_docs)
        return returned, lapsed, back_docs

    async def entry(self, entry_id: Any) -> Document:
        """A ledger entry that an order or operation refers to; it must exist."""
        found = await self.db.ledger.find_one({"_id": entry_id}, session=self.session)
        if found is None:
            raise LookupError(f"ledger entry {entry_id!r} is referenced but missing")
        return found

    async def _consume(self, member_id: str, points: int, query: Document) -> list[Document]:
        if points <= 0:
            return []
        cursor = self.db.lots.find({"memberId": member_id, "remaining": {"$gt": 0}, **query}, session=self.session)
        lots = [
            Lot(id=d["_id"], remaining=d["remaining"], expires_at=d["expiresAt"], created_at=d["createdAt"])
            async for d in cursor
        ]
        takes, _ = allocate(lots, points)
        if takes:  # every lot taken from, in one round trip
            await self.db.lots.bulk_write(
                [UpdateOne({"_id": t.lot_id}, {"$inc": {"remaining": -t.points}}) for t in takes],
                session=self.session,
            )
        return [{"lotId": t.lot_id, "points": t.points} for t in takes]

    async def _pay_debt(self, member_id: str, points: int, lot_takes: list[Document] | None = None) -> int:
        """Newly available points first repay debt left by refunds; returns what was repaid."""
        member = self.members[member_id]
        repay = min(member["debt"], points)
        if repay:
            member["debt"] -= repay
            await self.db.members.update_one({"_id": member_id}, {"$inc": {"debt": -repay}}, session=self.session)
            if lot_takes is not None:
                await self._consume(member_id, repay, {"_id": {"$in": [t["lotId"] for t in lot_takes]}})
        return repay

    async def _release_due(self, member_id: str) -> None:
        """Pending lots whose return window has closed become available (one entry each)."""
        due = self.db.lots.find(
            {"memberId": member_id, "state": LotState.PENDING, "availableAt": {"$lte": self.now}},
            session=self.session,
        )
        async for lot in due:
            await self.db.lots.update_one(
                {"_id": lot["_id"]}, {"$set": {"state": LotState.AVAILABLE}}, session=self.session
            )
            points = lot["remaining"]
            if points:
                await self._post(
                    member_id,
                    Memo(EntryKind.RELEASE, "Return window closed", Source("LOT", str(lot["_id"]))),
                    delta(pending=-points, available=points),
                    lots=[{"lotId": lot["_id"], "points": points}],
                )
                repaid = await self._pay_debt(member_id, points)
                if repaid:
                    await self.db.lots.update_one(
                        {"_id": lot["_id"]}, {"$inc": {"remaining": -repaid}}, session=self.session
                    )

    async def _expire_due(self, member_id: str) -> None:
        """Available lots past their expiry lose what is left of them (one entry each)."""
        due = self.db.lots.find(
            {
                "memberId": member_id,
                "state": LotState.AVAILABLE,
                "remaining": {"$gt": 0},
                "expiresAt": {"$ne": None, "$lte": self.now},
            },
            session=self.session,
        )
        async for lot in due:
            points = lot["remaining"]
            await self.db.lots.update_one(
                {"_id": lot["_id"], "remaining": points},
                {"$set": {"remaining": 0, "expired": points}},
                session=self.session,
            )
            await self._post(
                member_id,
                Memo(EntryKind.EXPIRE, "Points expired", Source("LOT", str(lot["_id"]))),
                delta(available=-points, expired=points),
                lots=[{"lotId": lot["_id"], "points": points}],
                extra={"expiredAt": lot["expiresAt"]},
            )

    def _lower_due(self, member_id: str, *instants: datetime | None) -> None:
        """Keep ``nextDueAt`` a lower bound of when anything of the member can fall due.

        While it lies in the future, locking the member skips the settle queries
        (nothing can be due); ``_post`` writes it with the balances.
        """
        member = self.members[member_id]
        for instant in instants:
            if instant is not None and (member.get("nextDueAt") is None or instant < as_utc(member["nextDueAt"])):
                member["nextDueAt"] = instant

    async def _recompute_due(self, member_id: str) -> None:
        """After settling: the earliest release or expiry still ahead (or never)."""
        pipeline: list[Document] = [
            {
                "$match": {
                    "memberId": member_id,
                    "$or": [
                        {"state": LotState.PENDING},
                        {"state": LotState.AVAILABLE, "remaining": {"$gt": 0}, "expiresAt": {"$ne": None}},
                    ],
                }
            },
            {
                "$group": {
                    "_id": None,
                    "at": {
                        "$min": {
                            "$cond": [
                                {"$eq": ["$state", LotState.PENDING]},
                                {"$min": ["$availableAt", "$expiresAt"]},
                                "$expiresAt",
                            ]
                        }
                    },
                }
            },
        ]
        rows = await (await self.db.lots.aggregate(pipeline, session=self.session)).to_list()
        due = rows[0]["at"] if rows and rows[0]["at"] is not None else NEVER_DUE
        self.members[member_id]["nextDueAt"] = due
        await self.db.members.update_one({"_id": member_id}, {"$set": {"nextDueAt": due}}, session=self.session)

    async def _post(
        self,
        member_id: str,
        memo: Memo,
        change: dict[str, int],
        *,
        lots: list[Document],
        extra: Mapping[str, Any] | None = None,
    ) -> Document:
        """Write one entry (the memo's kind, reason and source; ``extra``: the entry's other
        fields) and move the member's balances and sequence by ``change``."""
        member = self.members[member_id]
        member["ledgerSeq"] = member.get("ledgerSeq", 0) + 1
        member["balances"] = apply_delta(member["balances"], change)
        entry: Document = {
            "_id": ObjectId(),
            "memberId": member_id,
            "seq": member["ledgerSeq"],
            "kind": str(memo.kind),
            "points": net_points(change),
            "delta": change,
            "reason": memo.reason,
            "source": memo.source.document(),
            "lots": lots,
            "balancesAfter": member["balances"],
            "createdAt": self.now,
            "idempotencyKey": self.idempotency_key,
            **(extra or {}),
        }
        await self.db.members.update_one(
            {"_id": member_id},
            {
                "$inc": {"ledgerSeq": 1, **{f"balances.{k}": v for k, v in change.items() if v}},
                "$set": {"nextDueAt": member.get("nextDueAt")},
            },
            session=self.session,
        )
        await self.db.ledger.insert_one(entry, session=self.session)
        self.entries.append(entry)
        return entry


Work = Callable[[LedgerTx], Awaitable[Document]]


class Ledger:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def transact(self, work: Work, *, idempotency: Idempotency | None = None) -> Document:
        """Run ``work`` in one transaction; with ``idempotency``, at most once per key.

        ``work`` returns a small document (ids of what it made) that is stored with
        the idempotency record, so a replay returns the original result.
        """
        if idempotency is None:
            return await self._run(work, None)
        idempotency = idempotency.validated()
        # No read before the work: a first request (nearly all of them) pays nothing for its
        # key. The record is written in the same transaction as the work, so a repeat either
        # meets the unique key (its work rolled back with it) or is refused by a rule the first
        # request changed (ALREADY_DEDUCTED, OUT_OF_STOCK...): only then is the record read,
        # and a recorded request replays its first result (or is a conflict) instead.
        try:
            return await self._run(work, idempotency)
        except (DuplicateKeyError, DomainError):
            replay = await self._replay(idempotency)
            if replay is None:
                raise
            return replay

    async def _replay(self, idempotency: Idempotency) -> Document | None:
        record = await idempotency_store.find_record(self.db, idempotency.record_id)
        if record is None:
            return None
        if record["fingerprint"] != idempotency.fingerprint:
            raise IdempotencyConflict(
                "This idempotencyKey was already used for a different request", idempotencyKey=idempotency.key
            )
        return {**record["result"], "replayed": True}

    async def _run(self, work: Work, idempotency: Idempotency | None) -> Document:
        attempts: list[LedgerTx] = []

        async def attempt(session: AsyncClientSession) -> Document:
            program = await load_program(self.db, session=session)
            tx = LedgerTx(
                self.db, session, program, self.clock.now(), idempotency_key=idempotency.key if idempotency else None
            )
            attempts.append(tx)
            result = await work(tx)
            if idempotency is not None:
                await idempotency_store.insert_records(
                    self.db,
                    [
                        {
                            "_id": idempotency.record_id,
                            "fingerprint": idempotency.fingerprint,
                            "result": result,
                            "createdAt": tx.now,
                        }
                    ],
                    session,
                )
            return result

        result = await self.db.transaction(attempt)
        record_committed(attempts[-1].entries)
        return {**result, "replayed": False}

    async def transact_many(self, steps: list[tuple[Work, Idempotency]]) -> list[Document]:
        """Several idempotent operations in ONE transaction, in order; each keeps its own
        idempotency record, so each replays on its own later. Steps already recorded are
        replayed from their records and not run again.

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
            if record["fingerprint"] != idempotency.fingerprint:
                raise IdempotencyConflict(
                    "This idempotencyKey was already used for a different request", idempotencyKey=idempotency.key
                )
            results.append({**record["result"], "replayed": True})
        if not pending:
            return [r for r in results if r is not None]
        attempts: list[LedgerTx] = []

        async def attempt(session: AsyncClientSession) -> list[Document]:
            program = await load_program(self.db, session=session)
            tx = LedgerTx(self.db, session, program, self.clock.now())
            attempts.append(tx)
            done: list[Document] = []
            for _, work, idempotency in pending:
                tx.idempotency_key = idempotency.key
                done.append(await work(tx))
            await idempotency_store.insert_records(
                self.db,
                [
                    {"_id": i.record_id, "fingerprint": i.fingerprint, "result": result, "createdAt": tx.now}
                    for (_, _, i), result in zip(pending, done, strict=True)
                ],
                session,
            )
            return done

        done = await self.db.transaction(attempt)
        record_committed(attempts[-1].entries)
        for (index, _, _), result in zip(pending, done, strict=True):
            results[index] = {**result, "replayed": False}
        return [r for r in results if r is not None]

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
        found = {e["_id"]: e async for e in self.db.ledger.find({"_id": {"$in": entry_ids}})}
        return [found[i] for i in entry_ids if i in found]
