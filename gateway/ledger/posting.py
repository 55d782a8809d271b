"""Posting: how one transaction moves a member's points through lots, holds and entries.

Every change to a member's points happens through a ``LedgerTx`` inside ``Ledger.transact``
(gateway/ledger/unit_of_work.py): one MongoDB transaction that first locks the member
document (so concurrent writers of the same member serialize instead of losing updates),
settles what is due (pending lots whose return window closed become available, lots past
expiry expire), then moves points. Each move writes one immutable entry whose ``delta`` is
its exact change to the balances (gateway/domain/ledger_rules.py), described by a ``Memo``
(gateway/ledger/entries.py). Other writes that belong to the same business action (stock,
orders, idempotency records) go in the same transaction via ``tx.session``, so a change is
either wholly applied or not at all.

The moves: ``earn`` (a new lot, pending or available), ``spend`` (soonest-expiring lots
first), ``hold`` / ``post_hold`` / ``void_hold`` (a two-phase spend, gateway/domain/holds.py),
``take_back`` (reverse earning, into debt or a recorded shortfall) and ``restore`` (give a
spend back to the lots it came from). The queries are in gateway/store/ledger.py and lots.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from gateway.core.clock import as_utc
from gateway.core.errors import BadInput, DomainError, member_not_found
from gateway.domain.expiry import expiry_for
from gateway.domain.holds import HoldAction, HoldRefusal, HoldStatus, transition
from gateway.domain.ledger_rules import NEVER_DUE, Lot, Take, allocate, apply_delta, delta, give_back, net_points
from gateway.domain.member_status import REFUSAL_CODE, REFUSAL_MESSAGE, MemberStatus, points_refusal, status_of
from gateway.domain.program import ExpiryMode, Program
from gateway.ledger.entries import EntryKind, LotState, Memo, Source
from gateway.store import holds as holds_store
from gateway.store import ledger as ledger_store
from gateway.store import lots as lots_store
from gateway.store.mongo import Database, Document

# A store function that inserts documents in a transaction: ``(db, docs, session)``, one round trip.
Inserter = Callable[[Database, list[Document], AsyncClientSession], Awaitable[None]]


def lot_due_at(lot: Document) -> datetime | None:
    """When a lot next needs settling: its release while pending, its expiry while it holds points."""
    if lot["state"] == LotState.PENDING:
        instants = [i for i in (lot.get("availableAt"), lot.get("expiresAt")) if i is not None]
        return min(instants, key=as_utc) if instants else None
    return lot.get("expiresAt") if lot["remaining"] > 0 else None


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
    # Balance changes already written with the member's lock (``_lock_applying``), by member:
    # the next ``_post`` for that member writes only its entry.
    applied: dict[str, dict[str, int]] = field(default_factory=dict)
    # Write-behind (``Ledger.transact_many``: several operations in one transaction). New entries,
    # lots and what ``insert`` is given, and the balance moves of members already locked here,
    # wait in memory and go out together (``flush``): one insert per collection, one update per
    # member, before the transaction reads lots or entries and before it commits. Locks, lot takes,
    # debts and holds are written at once, as ever.
    write_behind: bool = False
    unwritten: dict[Inserter, list[Document]] = field(default_factory=dict)
    unmoved: dict[str, tuple[dict[str, int], int]] = field(default_factory=dict)  # member: (change, entries)

    async def insert(self, inserter: Inserter, doc: Document) -> None:
        """Insert ``doc`` with ``inserter`` in this transaction: now, or at the next ``flush``
        under write-behind (a step that reads what it inserted calls ``flush`` first)."""
        if self.write_behind:
            self.unwritten.setdefault(inserter, []).append(doc)
        else:
            await inserter(self.db, [doc], self.session)

    async def flush(self, *inserters: Inserter) -> None:
        """Write what write-behind holds: the documents of ``inserters`` (before reading their
        collection), or everything: each member's summed balance move, then every inserter's
        documents (before commit). Nothing reads a locked member back from MongoDB, so its
        moves wait for the end."""
        if not inserters:
            moves, self.unmoved = self.unmoved, {}
            for member_id, (change, entries) in moves.items():
                due = self.members[member_id].get("nextDueAt")
                await ledger_store.move(self.db, member_id, change, entries, due, session=self.session)
        for inserter in inserters or list(self.unwritten):
            if docs := self.unwritten.pop(inserter, None):
                await inserter(self.db, docs, self.session)

    async def _lock_applying(
        self, member_id: str, change: dict[str, int], *due: datetime | None, need_available: int = 0
    ) -> bool:
        """The first touch of a member whose move is known in advance: lock it and apply ``change``
        in one write instead of two (the lock, then the balances with the entry).

        Only when nothing else can be owed first: the member has nothing due to settle (its
        ``nextDueAt`` lies ahead), no debt to repay and may earn and spend (not frozen or
        closed); and for a spend, enough available points (the write's own condition). Otherwise
        the write is undone (or was not made) and False sends the caller down the ordinary path,
        which locks, settles and refuses as ever.
        """
        if member_id in self.members:
            return False
        lowest = min((d for d in due if d is not None), default=None)
        before = await ledger_store.lock_applying(
            self.db, member_id, change, lowest, need_available, session=self.session
        )
        if before is None:
            return False
        was_due = before.get("nextDueAt")
        if was_due is None or as_utc(was_due) <= self.now or before.get("debt", 0) or points_refusal(before):
            await ledger_store.undo_applying(self.db, member_id, change, was_due, session=self.session)
            return False
        before.setdefault("debt", 0)
        self.members[member_id] = before  # as the lock would have read it; ``_post`` moves it by ``change``
        self.applied[member_id] = change
        return True

    async def lock_for_spend(self, member_id: str, points: int) -> None:
        """Lock a member about to ``spend`` exactly ``points`` (read it with ``member`` as usual):
        when it can, the lock writes the spend's balance change too, saving a round trip."""
        if points > 0:
            await self._lock_applying(member_id, delta(available=-points, spent=points), need_available=points)

    def check_applied(self) -> None:
        """Every change written with a lock was posted, and nothing waits to be written (else the
        transaction must not commit)."""
        if self.applied:
            raise LookupError(f"balance changes written but never posted: {sorted(self.applied)}")
        if self.unwritten or self.unmoved:
            raise LookupError("write-behind holds writes never flushed")

    async def member(self, member_id: str, *, settle: bool = False, merged_ok: bool = False) -> Document:
        """Lock the member for this transaction and settle what is due; returns its document.

        The settle queries run only once ``nextDueAt`` has come, or when ``settle``
        asks for them (the expiry job, which finds due lots from the lots themselves).
        An account merged into another is refused (``MEMBER_MERGED``, naming the survivor)
        unless ``merged_ok`` (undoing the merge).
        """
        if member_id in self.members:
            return self.members[member_id]
        doc = await ledger_store.lock_member(self.db, member_id, session=self.session)
        if doc is None:
            raise member_not_found(member_id)
        if doc.get("mergedInto") and not merged_ok:
            raise DomainError(
                REFUSAL_MESSAGE[MemberStatus.MERGED],
                code=REFUSAL_CODE[MemberStatus.MERGED],
                memberId=member_id,
                mergedInto=doc["mergedInto"],
            )
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
        expiry = expiry_for(self.now, self.program.expiry, self.program.timezone)
        pending = available_at is not None and available_at > self.now
        change = (
            delta(pending=points, lifetimeEarned=points) if pending else delta(available=points, lifetimeEarned=points)
        )
        if not await self._lock_applying(member_id, change, available_at if pending else None, expiry):
            self.refuse_inactive(await self.member(member_id))
        self._lower_due(member_id, available_at if pending else None, expiry)
        lot_id = ObjectId()
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
        await self.insert(lots_store.insert_lots, lot)
        return entry

    async def spend(self, member_id: str, points: int, memo: Memo) -> Document:
        """Consume available points, soonest-expiring lots first; never below zero."""
        change = delta(available=-points, spent=points)
        takes = await self._take_available(member_id, points, change)
        return await self._post(member_id, memo, change, lots=takes, extra=memo.extra)

    async def hold(self, member_id: str, points: int, memo: Memo, *, purpose: str, expires_at: datetime) -> Document:
        """Put available points on hold (phase one of a two-phase spend); returns the hold.

        The points leave their lots now, soonest-expiring first, exactly as a spend
        would take them, so nothing else can spend them; ``post_hold`` turns them
        into a spend and ``void_hold`` puts them back into the same lots. ``purpose``
        names the feature that owns the hold (it settles holds that time out).
        """
        change = delta(available=-points, held=points)
        takes = await self._take_available(member_id, points, change)
        entry = await self._post(member_id, memo, change, lots=takes, extra=memo.extra)
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
        member = await self.member(member_id)  # serializes every change of this member, the hold's included
        if action is HoldAction.POST:
            self.refuse_inactive(member)
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

    async def _take_available(self, member_id: str, points: int, change: dict[str, int]) -> list[Document]:
        """Consume available points, soonest-expiring lots first; never below zero. ``change``: the
        move about to be posted (written with the lock when this is the member's first touch)."""
        if points <= 0:
            raise BadInput("points to spend must be positive", field="points")
        if await self._lock_applying(member_id, change, need_available=points):
            return await self._consume(member_id, points, state=LotState.AVAILABLE)
        member = await self.member(member_id)
        self.refuse_inactive(member)
        available = member["balances"]["available"]
        if available < points:
            raise InsufficientPoints(
                f"Member has {max(available, 0)} available points, {points} needed",
                available=max(available, 0),
                requested=points,
            )
        return await self._consume(member_id, points, state=LotState.AVAILABLE)

    @staticmethod
    def refuse_inactive(member: Document) -> None:
        """A frozen or closed member neither earns nor spends (gateway/domain/member_status.py)."""
        status = status_of(member)
        if status in REFUSAL_CODE:
            raise DomainError(REFUSAL_MESSAGE[status], code=REFUSAL_CODE[status], memberId=member["_id"])

    async def forfeit(self, member_id: str, memo: Memo) -> Document | None:
        """Every point the member still holds in lots (available and pending) lapses now, in one
        entry (an account closed on request); None when nothing is left. Debt stays as it is."""
        await self.member(member_id)
        await self.flush(lots_store.insert_lots)
        lots = await lots_store.with_points(self.db, member_id, session=self.session)
        if not lots:
            return None
        await lots_store.take(self.db, [(lot["_id"], lot["remaining"]) for lot in lots], session=self.session)
        available = sum(lot["remaining"] for lot in lots if lot["state"] == LotState.AVAILABLE)
        pending = sum(lot["remaining"] for lot in lots if lot["state"] == LotState.PENDING)
        self.members[member_id]["nextDueAt"] = NEVER_DUE
        return await self._post(
            member_id,
            memo,
            delta(available=-available, pending=-pending, expired=available + pending),
            lots=[{"lotId": lot["_id"], "points": lot["remaining"]} for lot in lots],
            extra=memo.extra,
        )

    async def move_points(
        self, from_id: str, to_id: str, lot_ids: list[Any], *, debt: int, memo_out: Memo, memo_in: Memo
    ) -> tuple[Document, Document]:
        """Move lots (with what remains in them, pending or available, original expiry) and
        ``debt`` from one account to another: an entry on each side, available and pending only
        (what each account earned, spent and let expire stays its own history). Both members
        must be locked first; neither may have points on hold in these lots."""
        source, target = self.members[from_id], self.members[to_id]
        await self.flush(lots_store.insert_lots)
        lots = [
            lot
            for lot in (await lots_store.by_id(self.db, lot_ids, session=self.session)).values()
            if lot["memberId"] == from_id
        ]
        available = sum(lot["remaining"] for lot in lots if lot["state"] == LotState.AVAILABLE)
        pending = sum(lot["remaining"] for lot in lots if lot["state"] == LotState.PENDING)
        await lots_store.reassign(self.db, [lot["_id"] for lot in lots], to_id, session=self.session)
        if debt:
            source["debt"] -= debt
            target["debt"] += debt
            await ledger_store.add_debt(self.db, from_id, -debt, session=self.session)
            await ledger_store.add_debt(self.db, to_id, debt, session=self.session)
        moved = [{"lotId": lot["_id"], "points": lot["remaining"]} for lot in lots if lot["remaining"]]
        self._lower_due(to_id, *(lot_due_at(lot) for lot in lots))
        out_entry = await self._post(
            from_id, memo_out, delta(available=debt - available, pending=-pending), lots=moved, extra=memo_out.extra
        )
        await self._recompute_due(from_id)
        in_entry = await self._post(
            to_id, memo_in, delta(available=available - debt, pending=pending), lots=moved, extra=memo_in.extra
        )
        return out_entry, in_entry

    async def take_back(self, member_id: str, points: int, memo: Memo, *, lot_ids: list[Any]) -> Document:
        """Reverse earning (a refund): from the lots it created first, then from other
        available points; what is still missing becomes debt if the program allows
        negative balances, else it is recorded on the entry as ``shortfall``.
        """
        if points <= 0:
            raise BadInput("points to take back must be positive", field="points")
        member = await self.member(member_id)
        pending_takes = await self._consume(member_id, points, state=LotState.PENDING, lot_ids=lot_ids)
        from_pending = sum(t["points"] for t in pending_takes)
        own_takes = await self._consume(member_id, points - from_pending, state=LotState.AVAILABLE, lot_ids=lot_ids)
        other_takes = await self._consume(
            member_id, points - from_pending - sum(t["points"] for t in own_takes), state=LotState.AVAILABLE
        )
        from_available = sum(t["points"] for t in own_takes + other_takes)
        missing = points - from_pending - from_available
        debt = missing if self.program.allow_negative_balance else 0
        if debt:
            member["debt"] += debt
            await ledger_store.add_debt(self.db, member_id, debt, session=self.session)
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
        await self.flush(ledger_store.insert_entries)
        already: dict[object, int] = {}
        async for earlier in ledger_store.restores_of(self.db, member_id, spend_entry["_id"], session=self.session):
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
        await self.flush(lots_store.insert_lots)
        lots = await lots_store.by_id(self.db, [t.lot_id for t in back], session=self.session)
        returned, lapsed = 0, 0
        into: list[Document] = []  # the lots that took the points back (for debt repayment)
        for take in back:
            lot = lots[take.lot_id]
            if lot["expiresAt"] is not None and as_utc(lot["expiresAt"]) <= self.now:
                lapsed += take.points
                continue
            returned += take.points
            self._lower_due(member_id, lot["expiresAt"])
            if lot["memberId"] == member_id:
                await lots_store.add_remaining(self.db, lot["_id"], take.points, session=self.session)
                into.append({"lotId": lot["_id"], "points": take.points})
            else:
                # the lot moved to another account since (a merge or its undoing): the points come back
                # to this member in a lot of their own, with the original expiry
                copy = {
                    **{k: lot[k] for k in ("entryId", "source", "expiresAt", "availableAt", "createdAt")},
                    "_id": ObjectId(),
                    "memberId": member_id,
                    "points": take.points,
                    "remaining": take.points,
                    "state": LotState.AVAILABLE,
                    "returnedFrom": lot["_id"],
                }
                await lots_store.insert(self.db, copy, session=self.session)
                into.append({"lotId": copy["_id"], "points": take.points})
        back_docs = [{"lotId": t.lot_id, "points": t.points} for t in back]
        if returned:
            await self._pay_debt(member_id, returned, lot_takes=into)
        return returned, lapsed, back_docs

    async def entry(self, entry_id: Any) -> Document:
        """A ledger entry that an order or operation refers to; it must exist."""
        await self.flush(ledger_store.insert_entries)
        found = await ledger_store.entry(self.db, entry_id, session=self.session)
        if found is None:
            raise LookupError(f"ledger entry {entry_id!r} is referenced but missing")
        return found

    async def _consume(
        self, member_id: str, points: int, *, state: str | None = None, lot_ids: list[Any] | None = None
    ) -> list[Document]:
        """Take ``points`` from the member's lots (of ``state``, among ``lot_ids``), soonest-expiring
        first. Returns the takes as entry lots.

        Without ``lot_ids``, under a program whose points expire, the soonest-expiring lot gives
        what it can in one round trip, and that is usually everything; only what it could not
        cover costs the usual read of the other lots and one write for all of them."""
        if points <= 0:
            return []
        await self.flush(lots_store.insert_lots)
        takes: list[Take] = []
        if lot_ids is None and self.program.expiry.mode is not ExpiryMode.NEVER:
            first = await lots_store.take_from_soonest(self.db, member_id, points, state=state, session=self.session)
            if first is not None:
                takes.append(Take(first["_id"], min(first["remaining"], points)))
                points -= takes[0].points
        if points:  # a first lot that gave less than asked gave all it had: the read below skips it
            found = await lots_store.with_points(self.db, member_id, state=state, lot_ids=lot_ids, session=self.session)
            lots = [
                Lot(id=d["_id"], remaining=d["remaining"], expires_at=d["expiresAt"], created_at=d["createdAt"])
                for d in found
            ]
            rest, _ = allocate(lots, points)
            await lots_store.take(self.db, [(t.lot_id, t.points) for t in rest], session=self.session)
            takes += rest
        return [{"lotId": t.lot_id, "points": t.points} for t in takes]

    async def _pay_debt(self, member_id: str, points: int, lot_takes: list[Document] | None = None) -> int:
        """Newly available points first repay debt left by refunds; returns what was repaid."""
        member = self.members[member_id]
        repay = min(member["debt"], points)
        if repay:
            member["debt"] -= repay
            await ledger_store.add_debt(self.db, member_id, -repay, session=self.session)
            if lot_takes is not None:
                await self._consume(member_id, repay, lot_ids=[t["lotId"] for t in lot_takes])
        return repay

    async def _release_due(self, member_id: str) -> None:
        """Pending lots whose return window has closed become available (one entry each)."""
        async for lot in lots_store.pending_due(self.db, member_id, self.now, session=self.session):
            await lots_store.make_available(self.db, lot["_id"], session=self.session)
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
                    await lots_store.add_remaining(self.db, lot["_id"], -repaid, session=self.session)

    async def _expire_due(self, member_id: str) -> None:
        """Available lots past their expiry lose what is left of them (one entry each)."""
        async for lot in lots_store.expiring_due(self.db, member_id, self.now, session=self.session):
            points = lot["remaining"]
            await lots_store.expire(self.db, lot["_id"], points, session=self.session)
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
        due = await lots_store.next_due(self.db, member_id, session=self.session) or NEVER_DUE
        self.members[member_id]["nextDueAt"] = due
        await ledger_store.set_next_due(self.db, member_id, due, session=self.session)

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
        applied = self.applied.pop(member_id, None)
        if applied is not None and applied != change:
            raise LookupError(f"member {member_id!r}: posting {change} after writing {applied}")
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
        if self.write_behind:
            if applied is None:  # moved at ``flush``, with the member's other unwritten moves
                moved, entries = self.unmoved.get(member_id, ({}, 0))
                self.unmoved[member_id] = (
                    {k: moved.get(k, 0) + change.get(k, 0) for k in {*moved, *change}},
                    entries + 1,
                )
            await self.insert(ledger_store.insert_entries, entry)
        elif applied is not None:  # the member's balances, sequence and due date were moved with its lock
            await ledger_store.insert_entry(self.db, entry, session=self.session)
        else:
            await ledger_store.append(self.db, entry, change, member.get("nextDueAt"), session=self.session)
        self.entries.append(entry)
        return entry
