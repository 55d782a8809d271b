"""Points movements other than purchases: check-in, behaviours, operator grants,
deduction at checkout and quota benefits. Each is one ledger transaction.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date

from gateway.core.auth import Principal
from gateway.core.clock import Clock
from gateway.core.errors import BadInput, DomainError, NotFound, quote
from gateway.domain import calendar, holds
from gateway.domain import earning as rules
from gateway.domain.holds import HoldStatus
from gateway.domain.money import amount_problem
from gateway.domain.program import Benefit, Program
from gateway.features.purchases import ORDER_ID
from gateway.features.rule_earning import earn_by_rule
from gateway.features.tiering import add_growth, reevaluate
from gateway.ledger import EntryKind, Idempotency, Ledger, LedgerTx, Memo, Source
from gateway.store import deductions
from gateway.store.mongo import Database, Document

CHECKOUT = "CHECKOUT"  # the purpose of a hold made by a deduction at checkout
MAX_GRANT_MEMBERS = 100
MAX_GRANT_POINTS = 10_000_000


class _OrderHasRecord(DomainError):
    """The order already has a deduction record (found by its unique index): decide it by reading it."""

    code = "ALREADY_DEDUCTED"


class AlreadyCheckedIn(DomainError):
    code = "ALREADY_CHECKED_IN"


class EarnCapReached(DomainError):
    code = "EARN_CAP_REACHED"


class BenefitNotAvailable(DomainError):
    code = "BENEFIT_NOT_AVAILABLE"


class QuotaExhausted(DomainError):
    code = "QUOTA_EXHAUSTED"


@dataclass(frozen=True)
class BenefitUsage:
    benefit: Benefit
    used: int
    period_start: date | None
    period_end: date | None

    @property
    def remaining(self) -> int | None:
        return None if self.benefit.quota is None else max(self.benefit.quota.count - self.used, 0)


class Engagement:
    def __init__(self, db: Database, clock: Clock, ledger: Ledger, *, hold_minutes: float = 30.0) -> None:
        self.db = db
        self.clock = clock
        self.ledger = ledger
        self.hold_minutes = hold_minutes

    # -- check-in (签到) ---------------------------------------------------------------

    async def check_in(self, principal: Principal, member_id: str, key: str | None) -> Document:
        """Once per local day; a replayed key returns the original check-in, a new one is refused."""
        idem = Idempotency.for_caller(principal, key, "checkIn", memberId=member_id) if key else None

        async def work(tx: LedgerTx) -> Document:
            member = await tx.member(member_id)
            today = calendar.local_date(tx.now, tx.program.timezone)
            state = member.get("checkIn") or {}
            last = date.fromisoformat(state["lastDay"]) if state.get("lastDay") else None
            outcome = rules.check_in(last, state.get("streak", 0), today, tx.program.earning)
            if outcome is None:
                raise AlreadyCheckedIn("Already checked in today", day=today.isoformat())
            earned = await earn_by_rule(
                tx,
                member_id,
                "CHECK_IN",
                outcome.points,
                Memo(
                    EntryKind.CHECK_IN,
                    f"Check-in, day {outcome.streak} of the streak",
                    Source("RULE", "CHECK_IN"),
                    {"streak": outcome.streak, "streakBonus": outcome.bonus},
                ),
            )
            await tx.db.members.update_one(
                {"_id": member_id},
                {"$set": {"checkIn": {"lastDay": today.isoformat(), "streak": outcome.streak}}},
                session=tx.session,
            )
            await add_growth(
                tx, member_id, tx.program.growth.check_in, reason="Check-in", source={"type": "RULE", "id": "CHECK_IN"}
            )
            await reevaluate(tx, member_id, reason="Growth from check-in", allow_down=False)
            return {
                "memberId": member_id,
                "streak": outcome.streak,
                "bonus": outcome.bonus,
                "points": earned.points,
                "capped": earned.capped,
                "entryIds": [earned.entry["_id"]] if earned.entry else [],
            }

        return await self.ledger.transact(work, idempotency=idem)

    # -- behaviours (评价, 晒图, 完善资料...) ----------------------------------------------

    async def record_behaviour(self, principal: Principal, member_id: str, event: str, key: str) -> Document:
        idem = Idempotency.for_caller(principal, key, "recordBehaviour", memberId=member_id, event=event)

        async def work(tx: LedgerTx) -> Document:
            points = tx.program.earning.behaviours.get(event)
            if points is None:
                known = ", ".join(sorted(tx.program.earning.behaviours))
                raise BadInput(f"Unknown behaviour event {quote(event)} (known: {known})", field="event")
            await tx.member(member_id)
            memo = Memo(EntryKind.BEHAVIOUR, f"Behaviour {event}", Source("RULE", event))
            earned = await earn_by_rule(tx, member_id, event, points, memo)
            if points > 0 and earned.points == 0:
                raise EarnCapReached(f"The earn cap for {event} is reached", rule=event)
            await add_growth(
                tx, member_id, tx.program.growth.behaviour, reason=event, source={"type": "RULE", "id": event}
            )
            await reevaluate(tx, member_id, reason=f"Growth from {event}", allow_down=False)
            return {
                "memberId": member_id,
                "event": event,
                "points": earned.points,
                "capped": earned.capped,
                "entryIds": [earned.entry["_id"]] if earned.entry else [],
            }

        return await self.ledger.transact(work, idempotency=idem)

    # -- operator grants and adjustments (送积分) ---------------------------------------

    async def grant(self, principal: Principal, member_ids: list[str], points: int, reason: str, key: str) -> Document:
        """All members or none: a negative grant is an adjustment that cannot overdraw."""
        member_ids = list(dict.fromkeys(member_ids))
        if not 1 <= len(member_ids) <= MAX_GRANT_MEMBERS:
            raise BadInput(f"grant to 1 to {MAX_GRANT_MEMBERS} members at once", field="memberIds")
        if points == 0 or abs(points) > MAX_GRANT_POINTS:
            raise BadInput(f"points must be non-zero and at most {MAX_GRANT_POINTS} either way", field="points")
        reason = reason.strip()
        if not 1 <= len(reason) <= 200:
            raise BadInput("reason must be 1 to 200 characters", field="reason")
        idem = Idempotency.for_caller(
            principal, key, "grantPoints", memberIds=sorted(member_ids), points=points, reason=reason
        )
        source = Source("OPERATOR", principal.subject)
        memo = Memo(EntryKind.GRANT, reason, source) if points > 0 else Memo(EntryKind.ADJUSTMENT, reason, source)

        async def work(tx: LedgerTx) -> Document:
            entry_ids = []
            for member_id in member_ids:
                if points > 0:
                    entry = await tx.earn(member_id, points, memo)
                else:
                    entry = await tx.spend(member_id, -points, memo)
                entry_ids.append(entry["_id"])
            return {"memberIds": member_ids, "points": points, "entryIds": entry_ids}

        return await self.ledger.transact(work, idempotency=idem)

    # -- deduction at checkout (积分抵扣): a hold, posted by the purchase -----------------

    async def deduct_at_checkout(
        self, principal: Principal, member_id: str, order_id: str, order_amount: int, points: int, key: str
    ) -> Document:
        """Put ``points`` on hold for ``order_id``; ``recordPurchase`` of that order posts them
        (re-checking the cap against what was really paid), ``cancelCheckoutDeduction`` or
        the timeout releases them. One live deduction per order; a voided one may be retried."""
        if not ORDER_ID.match(order_id):
            raise BadInput("orderId must be 1 to 100 letters, digits or _.:#/-", field="orderId")
        if problem := amount_problem(order_amount):
            raise BadInput(f"orderAmount {problem}", field="orderAmount")
        idem = Idempotency.for_caller(
            principal,
            key,
            "deductPointsAtCheckout",
            memberId=member_id,
            orderId=order_id,
            orderAmount=order_amount,
            points=points,
        )

        async def work(tx: LedgerTx, *, look_first: bool) -> Document:
            try:
                value = rules.deduction(points, order_amount, tx.program.deduction)
            except ValueError as exc:
                raise BadInput(str(exc), field="points") from None
            existing = None
            if look_first:  # lock the member before reading the order's record
                await tx.member(member_id)
                existing = await deductions.for_order(tx.db, member_id, order_id, session=tx.session)
            if existing is not None and existing.get("status", HoldStatus.POSTED) != HoldStatus.VOIDED:
                raise DomainError(
                    f"Points were already deducted on order {quote(order_id)}",
                    code="ALREADY_DEDUCTED",
                    orderId=order_id,
                )
            expires_at = holds.deadline(tx.now, self.hold_minutes)
            memo = Memo(
                EntryKind.DEDUCTION_HOLD,
                f"Held for checkout on {order_id}",
                Source("ORDER", order_id),
                {"valueFen": value.value_fen, "orderAmount": order_amount},
            )
            hold = await tx.hold(member_id, points, memo, purpose=CHECKOUT, expires_at=expires_at)
            deduction: Document = {
                "memberId": member_id,
                "orderId": order_id,
                "orderAmount": order_amount,
                "points": points,
                "valueFen": value.value_fen,
                "holdId": hold["_id"],
                "status": str(HoldStatus.HELD),
                "holdExpiresAt": expires_at,
                "createdAt": tx.now,
            }
            # a retry after a voided checkout reuses the order's record, keeping the voided holds
            if existing is None:
                saved = await deductions.insert(tx.db, deduction, session=tx.session)
            else:
                saved = await deductions.reopen(tx.db, existing, deduction, session=tx.session)
            if not saved:
                if not look_first:
                    raise _OrderHasRecord("Points were already deducted on this order")
                raise DomainError("Points were already deducted on this order", code="ALREADY_DEDUCTED")
            return {
                "memberId": member_id,
                "orderId": order_id,
                "points": points,
                "valueFen": value.value_fen,
                "status": str(HoldStatus.HELD),
                "holdExpiresAt": expires_at,
                "entryIds": [hold["holdEntryId"]],
            }

        # The order's unique index on deductions says whether it already has a record, so the first
        # attempt does not look for one: a new order (nearly every checkout) saves that read. If
        # the order has a record after all (deducted already, or voided and tried again), or the
        # attempt was refused for another reason while it has one (that refusal would have come
        # second), the checked path decides, so the answer and which refusal comes first are
        # exactly what they were.
        try:
            return await self.ledger.transact(functools.partial(work, look_first=False), idempotency=idem)
        except DomainError as exc:
            if (
                not isinstance(exc, _OrderHasRecord)
                and await deductions.for_order(self.db, member_id, order_id) is None
            ):
                raise
            return await self.ledger.transact(functools.partial(work, look_first=True), idempotency=idem)

    async def cancel_checkout(self, principal: Principal, member_id: str, order_id: str) -> Document:
        """Release the points held for an abandoned checkout; repeating it is harmless."""

        async def work(tx: LedgerTx) -> Document:
            await tx.member(member_id)
            deduction = await deductions.for_order(tx.db, member_id, order_id, session=tx.session)
            if deduction is None:
                raise NotFound(f"No points were deducted on order {order_id!r}", code="DEDUCTION_NOT_FOUND")
            if "holdId" not in deduction:  # deducted before holds existed: already a spend
                raise DomainError("These points were already spent", code="HOLD_ALREADY_POSTED")
            entry = await self._void(tx, deduction, f"Checkout on {order_id} cancelled")
            return self._deduction_result(deduction, HoldStatus.VOIDED, entry)

        result = await self.ledger.transact(work)
        return {**result, "replayed": not result["entryIds"]}

    async def void_expired_checkout(self, hold: Document) -> bool:
        """The sweeper's part: release a checkout hold past its deadline. False if already settled."""

        async def work(tx: LedgerTx) -> Document:
            await tx.member(hold["memberId"])
            deduction = await deductions.for_hold(tx.db, hold["_id"], session=tx.session)
            if deduction is None:
                raise LookupError(f"checkout hold {hold['_id']!r} has no deduction")
            entry = await self._void(tx, deduction, f"Checkout on {deduction['orderId']} timed out")
            return {"voided": entry is not None}

        try:
            return bool((await self.ledger.transact(work))["voided"])
        except DomainError:  # posted meanwhile
            return False

    async def _void(self, tx: LedgerTx, deduction: Document, reason: str) -> Document | None:
        entry = await tx.void_hold(
            deduction["holdId"], Memo(EntryKind.DEDUCTION_VOID, reason, Source("ORDER", deduction["orderId"]))
        )
        if entry is not None:
            await deductions.settle(tx.db, deduction, str(HoldStatus.VOIDED), {"settledAt": tx.now}, session=tx.session)
        return entry

    @staticmethod
    def _deduction_result(deduction: Document, status: HoldStatus, entry: Document | None) -> Document:
        return {
            "memberId": deduction["memberId"],
            "orderId": deduction["orderId"],
            "points": deduction["points"],
            "valueFen": deduction["valueFen"],
            "status": str(status),
            "holdExpiresAt": deduction.get("holdExpiresAt"),
            "entryIds": [entry["_id"]] if entry else [],
        }

    # -- quota benefits (权益) -----------------------------------------------------------

    async def benefits(self, member: Document, program: Program) -> list[BenefitUsage]:
        """The member's tier benefits with this period's quota usage."""
        tier = program.tier(member["tier"])
        today = calendar.local_date(self.clock.now(), program.timezone)
        usages = []
        for benefit in tier.benefits:
            if benefit.quota is None:
                usages.append(BenefitUsage(benefit, 0, None, None))
                continue
            start, end = calendar.period_bounds(today, benefit.quota.period)
            used = await self.db["benefit_usages"].count_documents(
                {
                    "memberId": member["_id"],
                    "code": benefit.code,
                    "period": calendar.period_key(today, benefit.quota.period),
                }
            )
            usages.append(BenefitUsage(benefit, used, start, end))
        return usages

    async def consume_benefit(self, principal: Principal, member_id: str, code: str, key: str) -> Document:
        idem = Idempotency.for_caller(principal, key, "consumeBenefit", memberId=member_id, code=code)

        async def work(tx: LedgerTx) -> Document:
            member = await tx.member(member_id)
            tier = tx.program.tier(member["tier"])
            benefit = next((b for b in tier.benefits if b.code == code), None)
            if benefit is None:
                raise BenefitNotAvailable(
                    f"Tier {tier.code} has no benefit {quote(code)}", tier=tier.code, benefit=code
                )
            if benefit.quota is None:
                raise BadInput(f"Benefit {quote(code)} has no quota to consume", field="code")
            today = calendar.local_date(tx.now, tx.program.timezone)
            period = calendar.period_key(today, benefit.quota.period)
            used = await tx.db["benefit_usages"].count_documents(
                {"memberId": member_id, "code": code, "period": period}, session=tx.session
            )
            if used >= benefit.quota.count:
                raise QuotaExhausted(
                    f"{code} already used {used} of {benefit.quota.count} times this period",
                    benefit=code,
                    used=used,
                )
            await tx.db["benefit_usages"].insert_one(
                {"memberId": member_id, "code": code, "period": period, "tier": tier.code, "at": tx.now},
                session=tx.session,
            )
            return {"memberId": member_id, "code": code, "used": used + 1, "period": period}

        return await self.ledger.transact(work, idempotency=idem)
