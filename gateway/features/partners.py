"""Coalition partners (SPEC section 5): configuration, member links, operations, settlement.

A partner is a merchant sharing the coalition points currency. Admins configure it
(``partners``); members consent by linking their partner account
(``partner_links``); the partner then accrues, burns, reverses and converts points
for linked members only. Every operation is one ledger transaction that also
records the operation (``partner_operations``) and, with a daily limit set, the
day's usage (``partner_daily``), idempotent on the partner's own event id in the
key space ``partner:<partnerId>`` shared by GraphQL and Kafka.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from gateway.core.auth import hash_api_key, new_api_key
from gateway.core.clock import Clock, as_utc
from gateway.core.errors import BadInput, DomainError, Forbidden, NotFound, member_not_found
from gateway.domain.exchange import (
    DEFAULT_REVERSAL_WINDOW_DAYS,
    MAX_REVERSAL_WINDOW_DAYS,
    AccrualRate,
    Direction,
    Fee,
    Rate,
    SettlementMoney,
    SettlementTotals,
    check_daily_limit,
    check_reversal_window,
    convert,
    settlement_money,
)
from gateway.ledger.transaction import EntryKind, Idempotency, Ledger, LedgerTx, Source
from gateway.store.mongo import Database, Document
from gateway.store.partners import remember_legacy_rate
from gateway.store.program import load_program

PARTNERS = "partners"
LINKS = "partner_links"
OPERATIONS = "partner_operations"
DAILY = "partner_daily"
PARTNER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
SIGNING_SECRET_PREFIX = "lgs_"
LIMIT_FIELDS = {"ACCRUE": "dailyAccruePoints", "BURN": "dailyBurnPoints", "CONVERT": "dailyConvertPoints"}


class OperationType(StrEnum):
    ACCRUE = "ACCRUE"
    BURN = "BURN"
    REVERSE = "REVERSE"
    CONVERT = "CONVERT"


def partner_not_found(partner_id: str) -> NotFound:
    return NotFound(f"Partner {partner_id!r} not found", code="PARTNER_NOT_FOUND")


def new_signing_secret() -> str:
    return SIGNING_SECRET_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Limits:
    """Per partner per day (program timezone), in coalition points; None is unlimited."""

    daily_accrue_points: int | None = None
    daily_burn_points: int | None = None
    daily_convert_points: int | None = None

    def document(self) -> Document:
        for name, value in vars(self).items():
            if value is not None and value < 0:
                raise BadInput(f"{name} must not be negative", field=name)
        return {
            "dailyAccruePoints": self.daily_accrue_points,
            "dailyBurnPoints": self.daily_burn_points,
            "dailyConvertPoints": self.daily_convert_points,
        }


@dataclass(frozen=True)
class PartnerTerms:
    """What an admin configures; every field optional on update."""

    name: str | None = None
    currency_name: str | None = None
    rate: Rate | None = None
    accrual_rate: AccrualRate | None = None
    fee: Fee | None = None
    limits: Limits | None = None
    settlement_milli_fen_per_point: int | None = None
    reversal_window_days: int | None = None
    active: bool | None = None

    def document(self) -> Document:
        doc: Document = {}
        if self.name is not None:
            name = self.name.strip()
            if not 1 <= len(name) <= 120:
                raise BadInput("name must be 1 to 120 characters", field="name")
            doc["name"] = name
        if self.currency_name is not None:
            currency = self.currency_name.strip()
            if not 1 <= len(currency) <= 60:
                raise BadInput("currencyName must be 1 to 60 characters", field="currencyName")
            doc["currencyName"] = currency
        if self.rate is not None:
            rate = self.rate.validated()
            doc["rate"] = {"partnerPoints": rate.partner_points, "coalitionPoints": rate.coalition_points}
        if self.accrual_rate is not None:
            accrual = self.accrual_rate.validated()
            doc["accrualRate"] = {"points": accrual.points, "perFen": accrual.per_fen}
        if self.fee is not None:
            fee = self.fee.validated()
            doc["fee"] = {"basisPoints": fee.basis_points, "fixedPoints": fee.fixed}
        if self.limits is not None:
            doc["limits"] = self.limits.document()
        if self.settlement_milli_fen_per_point is not None:
            if self.settlement_milli_fen_per_point < 0:
                raise BadInput("settlementMilliFenPerPoint must not be negative", field="settlementMilliFenPerPoint")
            doc["settlementMilliFenPerPoint"] = self.settlement_milli_fen_per_point
        if self.reversal_window_days is not None:
            if not 0 <= self.reversal_window_days <= MAX_REVERSAL_WINDOW_DAYS:
                raise BadInput(
                    f"reversalWindowDays must be from 0 to {MAX_REVERSAL_WINDOW_DAYS}", field="reversalWindowDays"
                )
            doc["reversalWindowDays"] = self.reversal_window_days
        if self.active is not None:
            doc["active"] = self.active
        return doc


def rate_of(partner: Document) -> Rate:
    return Rate(partner["rate"]["partnerPoints"], partner["rate"]["coalitionPoints"])


def fee_of(partner: Document) -> Fee:
    fee = partner.get("fee") or {}
    return Fee(fee.get("basisPoints", 0), fee.get("fixedPoints", 0))


def settlement_rate_of(partner: Document) -> int:
    """Money per point (milli-fen) recorded on operations the partner makes now."""
    return int(partner.get("settlementMilliFenPerPoint", 0))


def legacy_settlement_rate_of(partner: Document) -> int:
    """The rate for operations made before rates were recorded on them: the partner's rate
    before its first change since (``legacyMilliFenPerPoint``), or its rate now if it never changed."""
    return int(partner.get("legacyMilliFenPerPoint", settlement_rate_of(partner)))


def reversal_window_of(partner: Document) -> int:
    return int(partner.get("reversalWindowDays", DEFAULT_REVERSAL_WINDOW_DAYS))


def accrual_of(partner: Document) -> AccrualRate:
    accrual = partner.get("accrualRate") or {}
    return AccrualRate(accrual.get("points", 1), accrual.get("perFen", 100))


@dataclass(frozen=True)
class PartnerCommand:
    """One partner operation, however it arrived (GraphQL or Kafka).

    ``member_ref`` is the partner's member reference from the link, or the
    coalition member id (a reference match wins). ``points`` is coalition points
    for ACCRUE/BURN; for CONVERT it is in the currency the direction starts from.
    ``occurred_at`` (the partner's clock) is recorded but not part of the idempotency
    payload, so a GraphQL retry without it still matches the Kafka event.
    """

    type: OperationType
    event_id: str
    member_ref: str | None = None
    points: int | None = None
    amount: int | None = None
    direction: Direction | None = None
    original_event_id: str | None = None
    occurred_at: datetime | None = field(default=None, compare=False)

    def validated(self) -> PartnerCommand:
        if not 1 <= len(self.event_id) <= 200:
            raise BadInput("eventId must be 1 to 200 characters", field="eventId")
        if self.type is not OperationType.REVERSE and not self.member_ref:
            raise BadInput("memberRef is required", field="memberRef")
        if self.type is OperationType.ACCRUE:
            if (self.points is None) == (self.amount is None):
                raise BadInput("give exactly one of points or amount", field="points")
        elif self.type in (OperationType.BURN, OperationType.CONVERT) and self.points is None:
            raise BadInput("points is required", field="points")
        for name in ("points", "amount"):
            value = getattr(self, name)
            if value is not None and not 1 <= value <= 1_000_000_000:
                raise BadInput(f"{name} must be from 1 to 1,000,000,000", field=name)
        if self.type is OperationType.CONVERT and self.direction is None:
            raise BadInput("direction is required", field="direction")
        if self.type is OperationType.REVERSE and not self.original_event_id:
            raise BadInput("originalEventId is required", field="originalEventId")
        return self

    def idempotency(self, partner_id: str) -> Idempotency:
        """GraphQL and Kafka share this key space, so one event id applies once either way."""
        payload = {
            "operation": self.type.value,
            "memberRef": self.member_ref,
            "points": self.points,
            "amount": self.amount,
            "direction": self.direction.value if self.direction else None,
            "originalEventId": self.original_event_id,
        }
        return Idempotency(scope=f"partner:{partner_id}", key=self.event_id, payload=payload)


@dataclass
class Statement:
    """Totals by the money-per-point rate recorded on each operation, from the ledger and from the operations log."""

    partner: Document
    start: datetime
    end: datetime
    by_rate: dict[int, SettlementTotals]
    operation_count: int
    operations_by_rate: dict[int, SettlementTotals] = field(default_factory=dict)

    @property
    def totals(self) -> SettlementTotals:
        return sum(self.by_rate.values(), SettlementTotals())

    @property
    def money(self) -> SettlementMoney:
        return settlement_money(self.by_rate)

    @property
    def reconciled(self) -> bool:
        """The operations log and the ledger agree on every total at every rate."""
        zero = SettlementTotals()
        rates = set(self.by_rate) | set(self.operations_by_rate)
        return all(self.by_rate.get(r, zero) == self.operations_by_rate.get(r, zero) for r in rates)


class Partners:
    def __init__(self, db: Database, clock: Clock, ledger: Ledger) -> None:
        self.db = db
        self.clock = clock
        self.ledger = ledger

    # --- configuration -------------------------------------------------------------

    async def get(self, partner_id: str, session: Any = None) -> Document:
        doc = await self.db[PARTNERS].find_one({"_id": partner_id}, session=session)
        if doc is None:
            raise partner_not_found(partner_id)
        return doc

    async def all(self) -> list[Document]:
        return [doc async for doc in self.db[PARTNERS].find({}).sort("_id", 1)]

    async def create(self, terms: PartnerTerms, partner_id: str | None = None) -> tuple[Document, str, str]:
        """A new partner; returns it with its API key and signing secret (shown only now)."""
        if partner_id is not None and not PARTNER_ID.fullmatch(partner_id):
            raise BadInput("id may use letters, digits and _.:- (max 64)", field="id")
        fields = terms.document()
        for required in ("name", "currencyName", "rate"):
            if required not in fields:
                raise BadInput(f"{required} is required", field=required)
        api_key, secret = new_api_key(), new_signing_secret()
        now = self.clock.now()
        doc: Document = {
            "_id": partner_id or "ptn_" + secrets.token_hex(6),
            "accrualRate": {"points": 1, "perFen": 100},
            "fee": {"basisPoints": 0, "fixedPoints": 0},
            "limits": Limits().document(),
            "settlementMilliFenPerPoint": 0,
            "reversalWindowDays": DEFAULT_REVERSAL_WINDOW_DAYS,
            "active": True,
            **fields,
            "apiKeyHash": hash_api_key(api_key),
            "signingSecret": secret,
            "createdAt": now,
            "updatedAt": now,
            "keyRotatedAt": now,
        }
        try:
            await self.db[PARTNERS].insert_one(doc)
        except DuplicateKeyError:
            raise DomainError("A partner with this id already exists", code="ALREADY_EXISTS", field="id") from None
        return doc, api_key, secret

    async def rotate_key(self, partner_id: str) -> tuple[Document, str, str]:
        """New API key and signing secret; the old ones stop working at once."""
        api_key, secret = new_api_key(), new_signing_secret()
        now = self.clock.now()
        doc = await self.db[PARTNERS].find_one_and_update(
            {"_id": partner_id},
            {"$set": {"apiKeyHash": hash_api_key(api_key), "signingSecret": secret, "keyRotatedAt": now}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise partner_not_found(partner_id)
        return doc, api_key, secret

    async def update(self, partner_id: str, terms: PartnerTerms) -> Document:
        fields = terms.document()
        if "settlementMilliFenPerPoint" in fields:
            # Operations made before rates were recorded on them keep the rate they were made at.
            await remember_legacy_rate(self.db, partner_id)
        doc = await self.db[PARTNERS].find_one_and_update(
            {"_id": partner_id},
            {"$set": {**fields, "updatedAt": self.clock.now()}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise partner_not_found(partner_id)
        if "limits" in fields:
            await self._seed_daily_usage(doc)
        return doc

    async def _seed_daily_usage(self, partner: Document) -> None:
        """A limit set mid-day counts the day's earlier usage too (counters exist only while limited)."""
        limited = [op for op, name in LIMIT_FIELDS.items() if partner["limits"].get(name) is not None]
        if not limited:
            return
        program = await load_program(self.db)
        zone = ZoneInfo(program.timezone)
        now = self.clock.now()
        local_day = now.astimezone(zone).date()
        day_start = datetime.combine(local_day, time.min, tzinfo=zone)
        used = dict.fromkeys(LIMIT_FIELDS, 0)
        ops = self.db[OPERATIONS].find({"partnerId": partner["_id"], "createdAt": {"$gte": day_start}})
        async for op in ops:
            if op["type"] in used:
                used[op["type"]] += daily_usage(op)
        await self.db[DAILY].update_one(
            {"_id": f"{partner['_id']}:{local_day.isoformat()}"},
            {
                "$max": {op: used[op] for op in limited},
                "$setOnInsert": {"partnerId": partner["_id"], "day": local_day.isoformat()},
            },
            upsert=True,
        )

    # --- member links ---------------------------------------------------------------

    async def link(self, member_id: str, partner_id: str, partner_member_ref: str) -> Document:
        """The member's consent: this partner may now act on this member, known to it by the ref."""
        ref = partner_member_ref.strip()
        if not 1 <= len(ref) <= 128:
            raise BadInput("partnerMemberRef must be 1 to 128 characters", field="partnerMemberRef")
        partner = await self.get(partner_id)
        if not partner.get("active", True):
            raise DomainError("Partner is not active", code="PARTNER_INACTIVE")
        if await self.db.members.count_documents({"_id": member_id}) == 0:
            raise member_not_found(member_id)
        doc = {
            "_id": f"{partner_id}:{member_id}",
            "partnerId": partner_id,
            "memberId": member_id,
            "partnerMemberRef": ref,
            "linkedAt": self.clock.now(),
        }
        try:
            await self.db[LINKS].replace_one({"_id": doc["_id"]}, doc, upsert=True)
        except DuplicateKeyError:
            raise DomainError(
                "Another member is already linked with this partnerMemberRef",
                code="PARTNER_REF_TAKEN",
                field="partnerMemberRef",
            ) from None
        return doc

    async def unlink(self, member_id: str, partner_id: str) -> bool:
        """Withdraw consent; the partner can no longer act on the member (its past operations stay)."""
        result = await self.db[LINKS].delete_one({"_id": f"{partner_id}:{member_id}"})
        return result.deleted_count == 1

    async def links_for_member(self, member_id: str) -> list[Document]:
        return [doc async for doc in self.db[LINKS].find({"memberId": member_id}).sort("partnerId", 1)]

    async def linked_member(self, partner_id: str, member_ref: str, session: Any = None) -> str:
        """The member a partner means by ``member_ref``; only members linked to this partner."""
        links = [
            doc
            async for doc in self.db[LINKS].find(
                {"partnerId": partner_id, "$or": [{"partnerMemberRef": member_ref}, {"memberId": member_ref}]},
                session=session,
            )
        ]
        if not links:
            raise Forbidden(f"Member {member_ref!r} is not linked to this partner", code="MEMBER_NOT_LINKED")
        by_ref = [doc for doc in links if doc["partnerMemberRef"] == member_ref]
        return (by_ref or links)[0]["memberId"]

    # --- operations ---------------------------------------------------------------

    def _work(
        self, partner_id: str, command: PartnerCommand, known: Document | None = None
    ) -> Callable[[LedgerTx], Awaitable[Document]]:
        """The ledger work of one operation. The partner is the document the caller already
        read (authentication, the consumer's signature check) or read once per transaction."""

        async def work(tx: LedgerTx) -> Document:
            partner = known or tx.scratch.get(("partner", partner_id))
            if partner is None:
                partner = tx.scratch[("partner", partner_id)] = await self.get(partner_id, session=tx.session)
            if not partner.get("active", True):
                raise DomainError("Partner is not active", code="PARTNER_INACTIVE")
            if command.type is OperationType.REVERSE:
                return await self._reverse(tx, partner, command)
            member_id = await self.linked_member(partner_id, command.member_ref or "", session=tx.session)
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
                steps = [(self._work(partner_id, c, partner), c.idempotency(partner_id)) for c in valid]
                results = await self.ledger.transact_many(steps)
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
        idempotency = command.idempotency(partner_id)
        try:
            result = await self.ledger.transact(work, idempotency=idempotency)
        except DuplicateKeyError as exc:
            # The same event raced in twice; the winner committed its operation and its
            # idempotency record together, so asking again replays (or reports a conflict).
            if OPERATIONS not in str(exc):
                raise
            result = await self.ledger.transact(work, idempotency=idempotency)
        replayed = bool(result.pop("replayed", False))
        return result, replayed

    async def _operate(self, tx: LedgerTx, partner: Document, command: PartnerCommand, member_id: str) -> Document:
        partner_id = partner["_id"]
        source = Source("PARTNER", command.event_id, partner_id=partner_id)
        rate = settlement_rate_of(partner)
        extra: Document = {"partnerEventId": command.event_id, "settlementMilliFenPerPoint": rate}
        op: Document = self._operation(partner_id, command, member_id, tx.now)
        op["settlementMilliFenPerPoint"] = rate
        if command.type is OperationType.ACCRUE:
            points = command.points or accrual_of(partner).points_for(command.amount or 0)
            if points <= 0:
                raise BadInput("amount earns no points at this partner's accrual rate", field="amount")
            await self._count_daily(tx, partner, "ACCRUE", points)
            entry = await tx.earn(
                member_id,
                points,
                kind=EntryKind.PARTNER_ACCRUE,
                reason=f"Purchase at {partner['name']}",
                source=source,
                extra=extra,
            )
            op.update(points=points, lotIds=[lot["lotId"] for lot in entry["lots"]])
        elif command.type is OperationType.BURN:
            points = command.points or 0
            await self._count_daily(tx, partner, "BURN", points)
            entry = await tx.spend(
                member_id,
                points,
                kind=EntryKind.PARTNER_BURN,
                reason=f"Redeemed at {partner['name']}",
                source=source,
                extra=extra,
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
                    kind=EntryKind.PARTNER_CONVERT_IN,
                    reason=f"Converted {conversion.partner_points} {partner['currencyName']}",
                    source=source,
                    extra=extra,
                )
                op["lotIds"] = [lot["lotId"] for lot in entry["lots"]]
            else:
                entry = await tx.spend(
                    member_id,
                    conversion.coalition_points,
                    kind=EntryKind.PARTNER_CONVERT_OUT,
                    reason=f"Converted to {conversion.partner_points} {partner['currencyName']}",
                    source=source,
                    extra=extra,
                )
            op.update(
                points=conversion.coalition_points,
                partnerPoints=conversion.partner_points,
                fee=conversion.fee,
                remainder=conversion.remainder,
            )
        op.update(entryId=entry["_id"], availableAfter=entry["balancesAfter"]["available"])
        await tx.db[OPERATIONS].insert_one(op, session=tx.session)
        return op

    async def _reverse(self, tx: LedgerTx, partner: Document, command: PartnerCommand) -> Document:
        """Undo one of this partner's own operations: accruals are taken back, burns restored."""
        partner_id = partner["_id"]
        original_id = f"{partner_id}:{command.original_event_id}"
        original = await tx.db[OPERATIONS].find_one({"_id": original_id}, session=tx.session)
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
        marked = await tx.db[OPERATIONS].update_one(
            {"_id": original_id, "reversedBy": None},
            {"$set": {"reversedBy": command.event_id}},
            session=tx.session,
        )
        if marked.modified_count == 0:
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
                lot_ids=original.get("lotIds", []),
                kind=EntryKind.PARTNER_REVERSE,
                reason=reason,
                source=source,
                extra=extra,
            )
            points = -entry["delta"]["lifetimeEarned"]
        else:
            entry = await tx.restore(
                member_id, original_entry, kind=EntryKind.PARTNER_REVERSE, reason=reason, source=source, extra=extra
            )
            points = -entry["delta"]["spent"]
        op = self._operation(partner_id, command, member_id, tx.now)
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
        await tx.db[OPERATIONS].insert_one(op, session=tx.session)
        return op

    @staticmethod
    def _operation(partner_id: str, command: PartnerCommand, member_id: str, now: datetime) -> Document:
        return {
            "_id": f"{partner_id}:{command.event_id}",
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

    async def _count_daily(self, tx: LedgerTx, partner: Document, operation: str, points: int) -> None:
        """Count the day's usage, only while a limit is set, so unlimited partners never contend on a counter.

        The counter update is part of the transaction: a refused operation leaves it unchanged.
        """
        limit = (partner.get("limits") or {}).get(LIMIT_FIELDS[operation])
        if limit is None:
            return
        day = tx.now.astimezone(ZoneInfo(tx.program.timezone)).date().isoformat()
        counter = await tx.db[DAILY].find_one_and_update(
            {"_id": f"{partner['_id']}:{day}"},
            {"$inc": {operation: points}, "$setOnInsert": {"partnerId": partner["_id"], "day": day}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=tx.session,
        )
        assert counter is not None  # an upsert returning the document after always has one
        check_daily_limit(operation, counter[operation], limit)

    # --- settlement -----------------------------------------------------------------

    async def statement(self, partner_id: str, start: datetime, end: datetime) -> Statement:
        """Totals for [start, end) from the ledger, checked against the operations log."""
        if as_utc(end) <= as_utc(start):
            raise BadInput("to must be after from", field="to")
        partner = await self.get(partner_id)
        legacy_rate = legacy_settlement_rate_of(partner)
        period = {"$gte": start, "$lt": end}
        pipeline: list[Document] = [
            {"$match": {"source.partnerId": partner_id, "source.type": "PARTNER", "createdAt": period}},
            {
                "$group": {
                    "_id": {
                        "kind": "$kind",
                        "reverses": "$reversesKind",
                        "rate": {"$ifNull": ["$settlementMilliFenPerPoint", legacy_rate]},
                    },
                    "earned": {"$sum": "$delta.lifetimeEarned"},
                    "spent": {"$sum": "$delta.spent"},
                    "fee": {"$sum": {"$ifNull": ["$fee", 0]}},
                }
            },
        ]
        rows = [row async for row in await self.db.ledger.aggregate(pipeline)]
        rows_by_rate: dict[int, list[Document]] = {}
        for row in rows:
            rows_by_rate.setdefault(row["_id"]["rate"], []).append(row)
        ops = [op async for op in self.db[OPERATIONS].find({"partnerId": partner_id, "createdAt": period})]
        ops_by_rate: dict[int, list[Document]] = {}
        for op in ops:
            ops_by_rate.setdefault(op.get("settlementMilliFenPerPoint", legacy_rate), []).append(op)
        return Statement(
            partner=partner,
            start=start,
            end=end,
            by_rate={rate: totals_from_ledger_rows(group) for rate, group in sorted(rows_by_rate.items())},
            operation_count=len(ops),
            operations_by_rate={rate: totals_from_operations(group) for rate, group in ops_by_rate.items()},
        )

    async def operation(self, partner_id: str, event_id: str) -> Document | None:
        return await self.db[OPERATIONS].find_one({"_id": f"{partner_id}:{event_id}"})

    async def operations(
        self, partner_id: str, start: datetime, end: datetime, *, first: int, after: tuple[datetime, str] | None
    ) -> list[Document]:
        query: Document = {"partnerId": partner_id, "createdAt": {"$gte": start, "$lt": end}}
        if after is not None:
            at, op_id = after
            query["$or"] = [{"createdAt": {"$gt": at}}, {"createdAt": at, "_id": {"$gt": op_id}}]
        cursor = self.db[OPERATIONS].find(query).sort([("createdAt", 1), ("_id", 1)]).limit(first + 1)
        return [doc async for doc in cursor]


def totals_from_ledger_rows(rows: list[Document]) -> SettlementTotals:
    """Map ledger sums by (kind, reversed kind) onto settlement buckets."""
    sums: dict[str, int] = dict.fromkeys(vars(SettlementTotals()), 0)
    for row in rows:
        kind, reverses = row["_id"]["kind"], row["_id"].get("reverses")
        earned, spent, fee = row["earned"], row["spent"], row["fee"]
        sums["fees"] += fee
        if kind == EntryKind.PARTNER_ACCRUE:
            sums["accrued"] += earned
        elif kind == EntryKind.PARTNER_BURN:
            sums["burned"] += spent
        elif kind == EntryKind.PARTNER_CONVERT_IN:
            sums["converted_in"] += earned
        elif kind == EntryKind.PARTNER_CONVERT_OUT:
            sums["converted_out"] += spent - fee
        elif kind == EntryKind.PARTNER_REVERSE and reverses == EntryKind.PARTNER_ACCRUE:
            sums["accrual_reversed"] -= earned
        elif kind == EntryKind.PARTNER_REVERSE and reverses == EntryKind.PARTNER_BURN:
            sums["burn_reversed"] -= spent
        elif kind == EntryKind.PARTNER_REVERSE and reverses == EntryKind.PARTNER_CONVERT_IN:
            sums["conversion_reversed_in"] -= earned
        elif kind == EntryKind.PARTNER_REVERSE and reverses == EntryKind.PARTNER_CONVERT_OUT:
            sums["conversion_reversed_out"] -= spent - fee
    return SettlementTotals(**sums)


def totals_from_operations(ops: list[Document]) -> SettlementTotals:
    """The same buckets from the operations log (an independent record of what partners did)."""
    sums: dict[str, int] = dict.fromkeys(vars(SettlementTotals()), 0)
    for op in ops:
        kind = op["type"]
        if kind == OperationType.REVERSE:
            reversed_kind = op["reverses"]["kind"]
            bucket = {
                EntryKind.PARTNER_ACCRUE: "accrual_reversed",
                EntryKind.PARTNER_BURN: "burn_reversed",
                EntryKind.PARTNER_CONVERT_IN: "conversion_reversed_in",
                EntryKind.PARTNER_CONVERT_OUT: "conversion_reversed_out",
            }[reversed_kind]
            restored_fee = op["reversedFee"] if reversed_kind == EntryKind.PARTNER_CONVERT_OUT else 0
            sums[bucket] += op["points"] - restored_fee
            sums["fees"] -= op["reversedFee"]
        elif kind == OperationType.ACCRUE:
            sums["accrued"] += op["points"]
        elif kind == OperationType.BURN:
            sums["burned"] += op["points"]
        elif op["direction"] == Direction.PARTNER_TO_COALITION:
            sums["converted_in"] += op["points"]
            sums["fees"] += op["fee"]
        else:
            sums["converted_out"] += op["points"] - op["fee"]
            sums["fees"] += op["fee"]
    return SettlementTotals(**sums)


def daily_usage(op: Document) -> int:
    """What an operation counts against its daily limit: coalition points, gross of any fee."""
    if op["type"] != OperationType.CONVERT:
        return op["points"]
    fee = op.get("fee", 0)
    return op["points"] + fee if op["direction"] == Direction.PARTNER_TO_COALITION else op["points"] - fee
