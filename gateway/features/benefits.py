"""Quota benefits (权益): a tier's benefits with this period's usage, and consuming one use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from gateway.core.auth import Principal
from gateway.core.clock import Clock
from gateway.core.errors import BadInput, DomainError, quote
from gateway.domain import calendar
from gateway.domain.program import Benefit, Program
from gateway.ledger import Idempotency, Ledger, LedgerTx
from gateway.store import benefit_usages
from gateway.store.mongo import Database, Document


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


class Benefits:
    def __init__(self, db: Database, clock: Clock, ledger: Ledger) -> None:
        self.db = db
        self.clock = clock
        self.ledger = ledger

    async def of_member(self, member: Document, program: Program) -> list[BenefitUsage]:
        """The member's tier benefits with this period's quota usage."""
        tier = program.tier(member["tier"])
        today = calendar.local_date(self.clock.now(), program.timezone)
        usages = []
        for benefit in tier.benefits:
            if benefit.quota is None:
                usages.append(BenefitUsage(benefit, 0, None, None))
                continue
            start, end = calendar.period_bounds(today, benefit.quota.period)
            period = calendar.period_key(today, benefit.quota.period)
            used = await benefit_usages.count(self.db, member["_id"], benefit.code, period)
            usages.append(BenefitUsage(benefit, used, start, end))
        return usages

    async def consume(self, principal: Principal, member_id: str, code: str, key: str) -> Document:
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
            used = await benefit_usages.count(tx.db, member_id, code, period, session=tx.session)
            if used >= benefit.quota.count:
                raise QuotaExhausted(
                    f"{code} already used {used} of {benefit.quota.count} times this period",
                    benefit=code,
                    used=used,
                )
            await benefit_usages.record(tx.db, member_id, code, period, tier.code, tx.now, session=tx.session)
            return {"memberId": member_id, "code": code, "used": used + 1, "period": period}

        return await self.ledger.transact(work, idempotency=idem)
