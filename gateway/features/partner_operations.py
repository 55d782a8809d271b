"""Partner operations: accrue, burn, convert and reverse, each one ledger transaction, at most once.

Every operation is one ledger transaction that also records the operation
(``partner_operations``) and, with a daily limit set, the day's usage, idempotent on
the partner's own event id in the key space ``partner:<partnerId>`` shared by GraphQL
and Kafka. Each operation records the partner's money-per-point rate when it was
made (a reversal, its original's), so statements never re-price the past.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pymongo.errors import DuplicateKeyError

from gateway.core.clock import Clock, as_utc
from gateway.core.errors import BadInput, DomainError, Forbidden, NotFound
from gateway.domain.exchange import Direction, check_daily_limit, convert
from gateway.domain.partner_commands import OperationType, PartnerCommand, check_reversal_window
from gateway.domain.partner_terms import (
    accrual_of,
    daily_limit_of,
    fee_of,
    rate_of,
    require_active,
    reversal_window_of,
    settlement_rate_of,
)
from gateway.features.partners import partner_not_found
from gateway.ledger import EntryKind, Idempotency, Ledger, LedgerTx, Memo, Source
from gateway.store import partners as store
from gateway.store.mongo import Database, Document
from gateway.store.program import Along


def links_key(partner_id: str, member_ref: str) -> tuple[str, str, str]:
    """Where a transaction keeps the links a ref matched (``LedgerTx.scratch``)."""
    return ("links", partner_id, member_ref)


def links_along(partner_id: str, commands: list[PartnerCommand]) -> dict[Any, Along]:
    """The link reads of ``commands``, to make with the transaction's program read (one round trip)."""
    refs = {c.member_ref for c in commands if c.type is not OperationType.REVERSE and c.member_ref}
    return {links_key(partner_id, ref): store.links_matching_along(partner_id, ref) for ref in sorted(refs)}


def idempotency_of(partner_id: str, command: PartnerCommand) -> Idempotency:
    """GraphQL and Kafka share this key space, so one event id applies once either way."""
    return Idempotency(scope=f"partner:{partner_id}", key=command.event_id, payload=command.idempotency_payload())


class PartnerOperations:
    def __init__(self, db: Database, clock: Clock, ledger: Ledger) -> None:
        self.db = db
        self.clock = clock
        self.ledger = ledger

    def _work(
        self, partner_id: str, command: PartnerCommand, known: Document | None = None
    ) -> Callable[[LedgerTx], Awaitable[Document]]:
        """The ledger work of one operation. The partner is the document the caller already
        read (authentication, the consumer's signature check) or read once per transaction."""

        async def work(tx: LedgerTx) -> Document:
            partner = known or tx.scratch.get(("partner", partner_id))
            if partner is None:
                partner = await store.find_partner(tx.db, partner_id, session=tx.session)
                if partner is None:
                    raise partner_not_found(partner_id)
                tx.scratch[("partner", partner_id)] = partner
            require_active(partner)
            if command.type is OperationType.REVERSE:
                return await self._reverse(tx, partner, command)
            member_id = await self._linked_member(tx, partner_id, command.member_ref or "")
            return await self._operate(tx, partner, command, member_id)

        return work

    async def apply_batch(
        self, partner_id: str, commands: list[PartnerCommand], *, partner: Document | None = None
    ) -> list[tuple[Document, bool] | DomainError]:
        """Apply several operations of one partner (the events of one member, in order) in one
        transaction; each stays idempotent on its own. If any of them cannot apply, the batch
        is applied one operation at a time instead, so each success or refusal stands alone:
        the outcome per command is its result and whether it was a replay, or its DomainError.
        """
        if len(commands) > 1:
            try:
                valid = [c.validated() for c in commands]
                steps = [(self._work(partner_id, c, partner), idempotency_of(partner_id, c)) for c in valid]
                results = await self.ledger.transact_many(steps, along=links_along(partner_id, valid))
                return [(r, bool(r.pop("replayed", False))) for r in results]
            except (DomainError, DuplicateKeyError):
                pass  # one of them cannot apply (or raced in twice): apply each on its own
        outcomes: list[tuple[Document, bool] | DomainError] = []
        for command in commands:
            try:
                outcomes.append(await self.apply(partner_id, command, partner=partner))
            except DomainError as exc:
                outcomes.append(exc)
        return outcomes

    async def apply(
        self, partner_id: str, command: PartnerCommand, *, partner: Document | None = None
    ) -> tuple[Document, bool]:
        """Apply one operation at most once per (partner, event id); returns it and whether it was a replay.
        ``partner``: the partner's document when the caller already holds it (it must be ``partner_id``'s)."""
        command = command.validated()
        if partner is not None and partner["_id"] != partner_id:
            raise ValueError("the partner document given is not the partner's")
        work = self._work(partner_id, command, partner)
        idempotency = idempotency_of(partner_id, command)
        along = links_along(partner_id, [command])
        try:
            result = await self.ledger.transact(work, idempotency=idempotency, along=along)
        except DuplicateKeyError as exc:
            # The same event raced in twice; the winner committed its operation and its
            # idempotency record together, so asking again replays (or reports a conflict).
            if not store.is_operation_race(exc):
                raise
            result = await self.ledger.transact(work, idempotency=idempotency, along=along)
        replayed = bool(result.pop("replayed", False))
        return result, replayed

    async def operation(self, partner_id: str, event_id: str) -> Document | None:
        return await store.find_operation(self.db, partner_id, event_id)

    @staticmethod
    async def _linked_member(tx: LedgerTx, partner_id: str, member_ref: str) -> str:
        """The member a partner means by ``member_ref``; only members linked to this partner.
        Read once per transaction, with the program when the caller asked (``links_along``): a
        batch of one member's events asks for the same ref each time, and the transaction's
        snapshot cannot change under it."""
        key = links_key(partner_id, member_ref)
        links = tx.scratch.get(key)
        if links is None:
            links = tx.scratch[key] = await store.links_matching(tx.db, partner_id, member_ref, session=tx.session)
        if not links:
            raise Forbidden(f"Member {member_ref!r} is not linked to this partner", code="MEMBER_NOT_LINKED")
        by_ref = [doc for doc in links if doc["partnerMemberRef"] == member_ref]
        return str((by_ref or links)[0]["memberId"])

    async def _operate(self, tx: LedgerTx, partner: Document, command: PartnerCommand, member_id: str) -> Document:
        partner_id = partner["_id"]
        source = Source("PARTNER", command.event_id, partner_id=partner_id)
        rate = settlement_rate_of(partner)
        extra: Document = {"partnerEventId": command.event_id, "settlementMilliFenPerPoint": rate}
        op: Document = new_operation(partner_id, command, member_id, tx.now)
        op["settlementMilliFenPerPoint"] = rate
        if command.type is OperationType.ACCRUE:
            points = command.points or accrual_of(partner).points_for(command.amount or 0)
            if points <= 0:
                raise BadInput("amount earns no points at this partner's accrual rate", field="amount")
            await self._count_daily(tx, partner, "ACCRUE", points)
            entry = await tx.earn(
                member_id,
                points,
                Memo(EntryKind.PARTNER_ACCRUE, f"Purchase at {partner['name']}", source, extra),
            )
            op.update(points=points, lotIds=[lot["lotId"] for lot in entry["lots"]])
        elif command.type is OperationType.BURN:
            points = command.points or 0
            await self._count_daily(tx, partner, "BURN", points)
            entry = await tx.spend(
                member_id,
                points,
                Memo(EntryKind.PARTNER_BURN, f"Redeemed at {partner['name']}", source, extra),
            )
            op.update(points=points)
        else:
            direction = command.direction or Direction.PARTNER_TO_COALITION
            conversion = convert(direction, command.points or 0, rate_of(partner), fee_of(partner))
            await self._count_daily(tx, partner, "CONVERT", conversion.gross_coalition)
            extra.update(fee=conversion.fee, partnerPoints=conversion.partner_points)
            if direction is Direction.PARTNER_TO_COALITION:
                entry = await tx.earn(
                    member_id,
                    conversion.coalition_points,
                    Memo(
                        EntryKind.PARTNER_CONVERT_IN,
                        f"Converted {conversion.partner_points} {partner['currencyName']}",
                        source,
                        extra,
                    ),
                )
                op["lotIds"] = [lot["lotId"] for lot in entry["lots"]]
            else:
                entry = await tx.spend(
                    member_id,
                    conversion.coalition_points,
                    Memo(
                        EntryKind.PARTNER_CONVERT_OUT,
                        f"Converted to {conversion.partner_points} {partner['currencyName']}",
                        source,
                        extra,
                    ),
                )
            op.update(
                points=conversion.coalition_points,
                partnerPoints=conversion.partner_points,
                fee=conversion.fee,
                remainder=conversion.remainder,
            )
        op.update(entryId=entry["_id"], availableAfter=entry["balancesAfter"]["available"])
        await tx.insert(store.insert_operations, op)
        return op

    async def _reverse(self, tx: LedgerTx, partner: Document, command: PartnerCommand) -> Document:
        """Undo one of this partner's own operations: accruals are taken back, burns restored."""
        partner_id = partner["_id"]
        await tx.flush(store.insert_operations)  # the original may be an operation of this transaction
        original = await store.find_operation(tx.db, partner_id, command.original_event_id or "", session=tx.session)
        if original is None:
            raise NotFound(
                f"This partner has no operation with eventId {command.original_event_id!r}",
                code="PARTNER_OPERATION_NOT_FOUND",
            )
        if original["type"] == OperationType.REVERSE:
            raise BadInput("A reversal cannot be reversed", field="originalEventId")
        member_id = original["memberId"]
        if command.member_ref is not None and command.member_ref not in (member_id, original.get("memberRef")):
            raise BadInput("memberRef does not match the original operation", field="memberRef")
        # Inside the window a partner may reverse even after the member unlinked: a correction, not a new action.
        check_reversal_window(as_utc(original["createdAt"]), tx.now, reversal_window_of(partner))
        if not await store.mark_reversed(tx.db, original["_id"], command.event_id, session=tx.session):
            raise DomainError("This operation was already reversed", code="ALREADY_REVERSED")
        source = Source("PARTNER", command.event_id, partner_id=partner_id)
        original_entry = await tx.entry(original["entryId"])
        extra: Document = {
            "partnerEventId": command.event_id,
            "reversesKind": original_entry["kind"],
            "reversesEventId": original["eventId"],
            "fee": -original.get("fee", 0),
        }
        rate = original.get("settlementMilliFenPerPoint")  # what it was worth when made; absent on old operations
        if rate is not None:
            extra["settlementMilliFenPerPoint"] = rate
        reason = f"Reversal of {original['eventId']} by {partner['name']}"
        if original_entry["kind"] in (EntryKind.PARTNER_ACCRUE, EntryKind.PARTNER_CONVERT_IN):
            entry = await tx.take_back(
                member_id,
                original["points"],
                Memo(EntryKind.PARTNER_REVERSE, reason, source, extra),
                lot_ids=original.get("lotIds", []),
            )
            points = -entry["delta"]["lifetimeEarned"]
        else:
            entry = await tx.restore(member_id, original_entry, Memo(EntryKind.PARTNER_REVERSE, reason, source, extra))
            points = -entry["delta"]["spent"]
        op = new_operation(partner_id, command, member_id, tx.now)
        if rate is not None:
            op["settlementMilliFenPerPoint"] = rate
        op.update(
            points=points,
            shortfall=entry.get("shortfall", 0),
            reversedFee=original.get("fee", 0),
            reverses={"eventId": original["eventId"], "type": original["type"], "kind": original_entry["kind"]},
            entryId=entry["_id"],
            availableAfter=entry["balancesAfter"]["available"],
        )
        await tx.insert(store.insert_operations, op)
        return op

    @staticmethod
    async def _count_daily(tx: LedgerTx, partner: Document, operation: str, points: int) -> None:
        """Count the day's usage, only while a limit is set, so unlimited partners never contend on a counter.

        The counter update is part of the transaction: a refused operation leaves it unchanged.
        """
        limit = daily_limit_of(partner, operation)
        if limit is None:
            return
        day = tx.now.astimezone(ZoneInfo(tx.program.timezone)).date().isoformat()
        used = await store.count_daily(tx.db, partner["_id"], day, operation, points, session=tx.session)
        check_daily_limit(operation, used, limit)


def new_operation(partner_id: str, command: PartnerCommand, member_id: str, now: datetime) -> Document:
    return {
        "_id": store.operation_id(partner_id, command.event_id),
        "partnerId": partner_id,
        "eventId": command.event_id,
        "type": command.type.value,
        "direction": command.direction.value if command.direction else None,
        "memberId": member_id,
        "memberRef": command.member_ref,
        "amount": command.amount,
        "points": 0,
        "partnerPoints": None,
        "fee": 0,
        "remainder": 0,
        "occurredAt": command.occurred_at,
        "createdAt": now,
        "reversedBy": None,
    }
