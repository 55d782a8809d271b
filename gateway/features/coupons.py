"""Coupon code pools behind VIRTUAL gifts: import, generate, void, status, use, and the
redemption's part (assign a code, give it back on cancel).

Codes are stored sealed (AES-GCM under a key derived from ``LOYALTY_COUPON_CODE_KEY``, bound
to the code document's id) with a keyed hash for lookups and the global uniqueness index, so
the member can see their code again while the database, a backup or a log never holds one in
clear. A pool change and the gift's ``stock`` move in one transaction, with the admin audit
entry; a redemption assigns its codes inside the redemption's own transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pymongo.errors import DuplicateKeyError

from gateway.core.auth import Principal
from gateway.core.clock import Clock, as_utc
from gateway.core.errors import BadInput, DomainError, NotFound
from gateway.core.permissions import is_staff
from gateway.domain.admin_audit import AuditAction
from gateway.domain.coupons import (
    DEFAULT_CANCEL_WINDOW_MINUTES,
    MAX_IMPORT,
    VIRTUAL,
    CodeStatus,
    PoolCounts,
    cancel_deadline,
    cancel_refusal,
    cancel_window_problem,
    code_problem,
    expired,
    expiry_problem,
    expiry_sort_key,
    generate_codes,
    generation_problem,
    hint,
    normalize,
    plan_import,
    pool_counts,
    status_after_return,
)
from gateway.features.admin_audit import AdminAudit
from gateway.features.catalog import gift_not_found
from gateway.store import coupons as store
from gateway.store import gifts
from gateway.store import redemptions as orders
from gateway.store.mongo import Database, Document

POOL = "coupon_pool"
FULFILLED = "FULFILLED"
AWAITING_PAYMENT = "AWAITING_PAYMENT"
MAX_COLLISION_ROUNDS = 20


def is_virtual(gift: Document) -> bool:
    return gift.get("kind") == VIRTUAL


def not_virtual(gift_id: str) -> DomainError:
    return DomainError(f"Gift {gift_id!r} is not a virtual gift; it has no code pool", code="NOT_A_VIRTUAL_GIFT")


def coupon_not_found() -> NotFound:
    # Never echoes the code: error messages reach logs.
    return NotFound("No coupon with this code was issued to this member", code="COUPON_NOT_FOUND")


class PoolShort(DomainError):
    """The gift's stock said a code was left but none still good was (expired, not yet swept)."""

    code = "OUT_OF_STOCK"


class CodeSealer:
    """Encrypts codes for storage and hashes them for lookup, with two keys derived from one secret."""

    def __init__(self, secret: str) -> None:
        master = secret.encode()
        self._aead = AESGCM(hmac.new(master, b"coupon-code-seal", hashlib.sha256).digest())
        self._lookup = hmac.new(master, b"coupon-code-lookup", hashlib.sha256).digest()

    def digest(self, code: str) -> str:
        return hmac.new(self._lookup, code.encode(), hashlib.sha256).hexdigest()

    def seal(self, code_id: str, code: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, code.encode(), code_id.encode())

    def open(self, code_id: str, sealed: bytes) -> str:
        return self._aead.decrypt(bytes(sealed[:12]), bytes(sealed[12:]), code_id.encode()).decode()


def new_code_id() -> str:
    return "cpc_" + secrets.token_hex(12)


@dataclass(frozen=True)
class BatchCounts:
    counts: PoolCounts
    batch: Document


@dataclass(frozen=True)
class PoolStatus:
    gift_id: str
    counts: PoolCounts
    gift_stock: int
    cancel_window_minutes: int
    next_expiry: datetime | None
    batches: list[BatchCounts] = field(default_factory=list)


@dataclass(frozen=True)
class ImportResult:
    batch_id: str
    added: int
    already_in_pool: int
    duplicate_in_input: int
    in_another_pool: int


@dataclass(frozen=True)
class GenerateResult:
    batch_id: str
    added: int
    replayed: bool


@dataclass(frozen=True)
class VoidResult:
    voided: int
    not_available: int
    not_found: int


@dataclass(frozen=True)
class IssuedCode:
    code: str
    expires_at: datetime | None
    status: str  # ISSUED, USED or EXPIRED, as the member sees it
    used_at: datetime | None


class Coupons:
    def __init__(self, db: Database, clock: Clock, audit: AdminAudit, secret: str) -> None:
        self.db = db
        self.clock = clock
        self.audit = audit
        self.sealer = CodeSealer(secret)

    # -- the pool, for staff (catalog:manage) -----------------------------------------------------

    async def _virtual_gift(self, gift_id: str, session: Any = None) -> Document:
        gift = await gifts.find(self.db, gift_id, session)
        if gift is None:
            raise gift_not_found(gift_id)
        if not is_virtual(gift):
            raise not_virtual(gift_id)
        return gift

    def _code_doc(self, gift_id: str, code: str, batch_id: str, expires_at: datetime | None, now: datetime) -> Document:
        code_id = new_code_id()
        return {
            "_id": code_id,
            "giftId": gift_id,
            "codeHash": self.sealer.digest(code),
            "sealed": self.sealer.seal(code_id, code),
            "hint": hint(code),
            "status": str(CodeStatus.AVAILABLE),
            "expiresAt": expires_at,
            "sortExpiry": expiry_sort_key(expires_at),
            "batchId": batch_id,
            "createdAt": now,
        }

    async def import_codes(
        self,
        principal: Principal,
        gift_id: str,
        raw_codes: Sequence[str],
        *,
        expires_at: datetime | None,
        batch_id: str | None = None,
        label: str | None = None,
    ) -> ImportResult:
        """Add codes to the pool; one transaction per call (at most ``MAX_IMPORT`` lines).

        Idempotent by nature: a code already in this pool is counted and skipped, so sending the
        same file again adds nothing. A code already in another pool is skipped and reported
        (one code, one coupon). A line that cannot be a code refuses the whole call.
        """
        if len(raw_codes) > MAX_IMPORT:
            raise BadInput(f"at most {MAX_IMPORT} codes per call; send a longer file in parts", field="codes")
        plan = plan_import(raw_codes)
        if plan.invalid:
            line, problem = plan.invalid[0]
            raise BadInput(
                f"line {line}: {problem} ({len(plan.invalid)} bad lines); nothing was imported",
                field="codes",
                badLines=[number for number, _ in plan.invalid[:20]],
            )
        now = self.clock.now()
        expires_at = as_utc(expires_at) if expires_at is not None else None
        if (bad := expiry_problem(expires_at, now)) is not None:
            raise BadInput(bad, field="expiresAt")
        if label is not None and not 1 <= len(label.strip()) <= 80:
            raise BadInput("label must be 1 to 80 characters", field="label")
        batch_id = batch_id or "imp_" + secrets.token_hex(8)
        if not 1 <= len(batch_id) <= 80:
            raise BadInput("batchId must be 1 to 80 characters", field="batchId")
        await self._virtual_gift(gift_id)
        hashes = {code: self.sealer.digest(code) for code in plan.codes}

        async def work(session: Any) -> ImportResult:
            batch = await store.find_batch(self.db, batch_id, session)
            if batch is not None and (batch["giftId"] != gift_id or batch["kind"] != "IMPORT"):
                raise DomainError("This batchId belongs to another pool or kind of batch", code="IDEMPOTENCY_CONFLICT")
            existing = await store.existing_hashes(self.db, list(hashes.values()), session)
            fresh = [c for c in plan.codes if hashes[c] not in existing]
            in_pool = sum(1 for h in hashes.values() if existing.get(h) == gift_id)
            elsewhere = len(existing) - in_pool
            docs = [self._code_doc(gift_id, c, batch_id, expires_at, now) for c in fresh]
            await store.insert_codes(self.db, docs, session)
            if docs:
                await store.add_stock(self.db, gift_id, len(docs), now, session)
            counts = {
                "added": len(docs),
                "alreadyInPool": in_pool,
                "duplicateInInput": plan.duplicates_in_input,
                "inAnotherPool": elsewhere,
            }
            if batch is None:
                await store.insert_batch(
                    self.db,
                    {
                        "_id": batch_id,
                        "giftId": gift_id,
                        "kind": "IMPORT",
                        "label": label.strip() if label else None,
                        "expiresAt": expires_at,
                        **counts,
                        "by": f"{principal.role.value}:{principal.subject}",
                        "createdAt": now,
                        "updatedAt": now,
                    },
                    session,
                )
            else:
                await store.add_to_batch(self.db, batch_id, counts, now, session)
            await self.audit.record(
                principal,
                AuditAction.COUPON_POOL_CHANGE,
                POOL,
                gift_id,
                {"op": "import", "batchId": batch_id, **counts, "expiresAt": expires_at},
                session=session,
            )
            return ImportResult(batch_id, len(docs), in_pool, plan.duplicates_in_input, elsewhere)

        try:
            return await self.db.transaction(work)
        except DuplicateKeyError:  # a concurrent import stored some of these codes first: count again
            return await self.db.transaction(work)

    async def generate(
        self,
        principal: Principal,
        gift_id: str,
        *,
        count: int,
        prefix: str,
        length: int,
        expires_at: datetime | None,
        idempotency_key: str,
    ) -> GenerateResult:
        """Generate ``count`` new codes; repeating the same key returns the first result."""
        now = self.clock.now()
        expires_at = as_utc(expires_at) if expires_at is not None else None
        if problem := expiry_problem(expires_at, now):
            raise BadInput(problem, field="expiresAt")
        if not 1 <= len(idempotency_key) <= 80:
            raise BadInput("idempotencyKey must be 1 to 80 characters", field="idempotencyKey")
        await self._virtual_gift(gift_id)
        batch_id = f"gen:{gift_id}:{idempotency_key}"
        params = {"count": count, "prefix": prefix, "length": length, "expiresAt": expires_at}
        if (done := await store.find_batch(self.db, batch_id)) is not None:
            return self._replayed(done, params)
        status = await self.status(gift_id)
        if refusal := generation_problem(prefix, length, count, status.counts.total):
            raise BadInput(refusal[1], field=refusal[0])

        async def work(session: Any) -> GenerateResult:
            if (done := await store.find_batch(self.db, batch_id, session)) is not None:
                return self._replayed(done, params)
            codes = generate_codes(prefix, length, count)
            for _ in range(MAX_COLLISION_ROUNDS):
                taken = await store.existing_hashes(self.db, [self.sealer.digest(c) for c in codes], session)
                if not taken:
                    break
                keep = [c for c in codes if self.sealer.digest(c) not in taken]
                codes = (
                    keep
                    + [c for c in generate_codes(prefix, length, count - len(keep)) if c not in keep][
                        : count - len(keep)
                    ]
                )
            else:
                raise DomainError("Could not draw unique codes; use a longer random part", code="CONFLICT")
            docs = [self._code_doc(gift_id, c, batch_id, expires_at, now) for c in codes]
            await store.insert_codes(self.db, docs, session)
            await store.add_stock(self.db, gift_id, len(docs), now, session)
            await store.insert_batch(
                self.db,
                {
                    "_id": batch_id,
                    "giftId": gift_id,
                    "kind": "GENERATE",
                    "label": f"{prefix}… × {count}",
                    **params,
                    "added": len(docs),
                    "by": f"{principal.role.value}:{principal.subject}",
                    "createdAt": now,
                    "updatedAt": now,
                },
                session,
            )
            await self.audit.record(
                principal,
                AuditAction.COUPON_POOL_CHANGE,
                POOL,
                gift_id,
                {"op": "generate", "batchId": batch_id, "added": len(docs), **params},
                session=session,
            )
            return GenerateResult(batch_id, len(docs), False)

        try:
            return await self.db.transaction(work)
        except DuplicateKeyError:  # the same key committed concurrently, or a code drawn twice at once
            return await self.db.transaction(work)

    @staticmethod
    def _replayed(batch: Document, params: Document) -> GenerateResult:
        stored = {k: batch.get(k) for k in params}
        if (at := stored.get("expiresAt")) is not None:
            stored["expiresAt"] = as_utc(at)
        if stored != params:
            raise DomainError("This idempotencyKey was used with other parameters", code="IDEMPOTENCY_CONFLICT")
        return GenerateResult(batch["_id"], int(batch["added"]), True)

    async def void(self, principal: Principal, gift_id: str, raw_codes: Sequence[str], reason: str) -> VoidResult:
        """Withdraw codes still in the pool (leaked, defective); assigned or used codes are left."""
        reason = reason.strip()
        if not 1 <= len(reason) <= 200:
            raise BadInput("reason must be 1 to 200 characters", field="reason")
        if not 1 <= len(raw_codes) <= MAX_IMPORT:
            raise BadInput(f"codes must list 1 to {MAX_IMPORT} codes", field="codes")
        codes = list(dict.fromkeys(normalize(c) for c in raw_codes if not code_problem(normalize(c))))
        await self._virtual_gift(gift_id)
        hashes = [self.sealer.digest(c) for c in codes]
        now = self.clock.now()

        async def work(session: Any) -> VoidResult:
            known = await store.statuses_by_hash(self.db, gift_id, hashes, session)
            voided = await store.void_available(
                self.db, gift_id, hashes, {"voidedAt": now, "voidReason": reason}, session
            )
            if voided:
                await store.add_stock(self.db, gift_id, -voided, now, session)
            result = VoidResult(voided, len(known) - voided, len(raw_codes) - len(known))
            await self.audit.record(
                principal,
                AuditAction.COUPON_POOL_CHANGE,
                POOL,
                gift_id,
                {"op": "void", "voided": voided, "notAvailable": result.not_available, "notFound": result.not_found},
                reason=reason,
                session=session,
            )
            return result

        return await self.db.transaction(work)

    async def set_cancel_window(self, principal: Principal, gift_id: str, minutes: int) -> Document:
        """How long after fulfilment a member may cancel an unused coupon (orders placed from now on)."""
        if problem := cancel_window_problem(minutes):
            raise BadInput(problem, field="cancelWindowMinutes")
        gift = await self._virtual_gift(gift_id)
        before = cancel_window_of(gift)
        now = self.clock.now()

        async def work(session: Any) -> Document:
            await store.set_cancel_window(self.db, gift_id, minutes, now, session)
            await self.audit.record(
                principal,
                AuditAction.COUPON_POOL_CHANGE,
                POOL,
                gift_id,
                {"op": "cancel_window", "from": before, "to": minutes},
                session=session,
            )
            return {}

        await self.db.transaction(work)
        return await self._virtual_gift(gift_id)

    async def status(self, gift_id: str) -> PoolStatus:
        gift = await self._virtual_gift(gift_id)
        now = self.clock.now()
        rows = await store.grouped_counts(self.db, gift_id, now)
        by_batch: dict[str, list[tuple[str, bool, int]]] = {}
        for row in rows:
            key = row["_id"]
            by_batch.setdefault(key.get("batch") or "", []).append((key["status"], bool(key["past"]), row["count"]))
        all_groups = [g for groups in by_batch.values() for g in groups]
        batches = [
            BatchCounts(pool_counts(by_batch.get(batch["_id"], [])), batch)
            for batch in await store.batches_of(self.db, gift_id)
        ]
        return PoolStatus(
            gift_id=gift_id,
            counts=pool_counts(all_groups),
            gift_stock=int(gift["stock"]),
            cancel_window_minutes=cancel_window_of(gift),
            next_expiry=await store.next_available_expiry(self.db, gift_id, now),
            batches=batches,
        )

    async def expire_due(self, gift_id: str | None = None) -> int:
        """Codes still in the pool past their expiry leave it (EXPIRED) and the stock with them."""
        now = self.clock.now()
        gift_ids = [gift_id] if gift_id is not None else await store.gifts_with_due_codes(self.db, now)
        total = 0
        for gid in gift_ids:

            async def work(session: Any, gid: str = gid) -> int:
                count = await store.expire_due(self.db, gid, now, session)
                if count:
                    await store.add_stock(self.db, gid, -count, now, session)
                return count

            total += await self.db.transaction(work)
        return total

    # -- using a coupon (the storefront's checkout backend, or staff) -------------------------------

    async def mark_used(self, principal: Principal, code: str, member_id: str, reference: str) -> Document:
        """The member's code was applied to an order (``reference``): ASSIGNED → USED, for good.

        Only a code issued to ``member_id`` by a fulfilled order can be used; repeating the call
        with the same reference answers the same, another reference gets COUPON_ALREADY_USED.
        """
        code = normalize(code)
        reference = reference.strip()
        if not 1 <= len(reference) <= 200:
            raise BadInput("reference must be 1 to 200 characters", field="reference")
        if code_problem(code):
            raise coupon_not_found()
        digest = self.sealer.digest(code)
        now = self.clock.now()

        async def work(session: Any) -> Document:
            doc = await store.find_by_hash(self.db, digest, session)
            if doc is None:
                raise coupon_not_found()
            if doc["status"] == CodeStatus.USED and doc.get("memberId") == member_id:
                if doc.get("useReference") == reference:
                    return doc
                raise DomainError("This coupon was already used", code="COUPON_ALREADY_USED")
            if doc["status"] != CodeStatus.ASSIGNED or doc.get("memberId") != member_id:
                raise coupon_not_found()
            order = await orders.find(self.db, doc["orderId"], session)
            if order is None or order["status"] != FULFILLED:
                raise coupon_not_found()  # awaiting payment: not issued yet
            if expired(doc.get("expiresAt"), now):
                raise DomainError("This coupon has expired", code="COUPON_EXPIRED")
            used = await store.mark_used(
                self.db,
                doc["_id"],
                member_id,
                {
                    "usedAt": now,
                    "useReference": reference,
                    "usedByMember": member_id,
                    "usedReportedBy": f"{principal.role.value}:{principal.subject}",
                },
                session,
            )
            if used is None:
                raise coupon_not_found()
            if is_staff(principal):
                await self.audit.record(
                    principal,
                    AuditAction.COUPON_POOL_CHANGE,
                    POOL,
                    doc["giftId"],
                    {"op": "mark_used", "codeId": doc["_id"], "orderId": doc["orderId"], "reference": reference},
                    session=session,
                )
            return used

        return await self.db.transaction(work)

    async def issued(self, order: Document) -> list[IssuedCode]:
        """The codes an order gave its member, in clear (callers: the member, admins). None until
        the order is fulfilled; none after it is cancelled (they went back to the pool)."""
        if order.get("kind") != VIRTUAL or order["status"] != FULFILLED:
            return []
        now = self.clock.now()
        result = []
        for doc in await store.codes_of_order(self.db, order["_id"]):
            shown = (
                "USED"
                if doc["status"] == CodeStatus.USED
                else "EXPIRED"
                if expired(doc.get("expiresAt"), now)
                else "ISSUED"
            )
            result.append(
                IssuedCode(
                    code=self.sealer.open(doc["_id"], doc["sealed"]),
                    expires_at=as_utc(doc["expiresAt"]) if doc.get("expiresAt") else None,
                    status=shown,
                    used_at=as_utc(doc["usedAt"]) if doc.get("usedAt") else None,
                )
            )
        return result

    async def member_codes(self, member_id: str) -> list[Document]:
        """A member's coupons in clear, for their own export (PIPL): code, gift, order, status, dates."""
        now = self.clock.now()
        return [
            {
                "code": self.sealer.open(doc["_id"], doc["sealed"]),
                "giftId": doc["giftId"],
                "redemptionId": doc.get("orderId"),
                "status": "USED"
                if doc["status"] == CodeStatus.USED
                else "EXPIRED"
                if expired(doc.get("expiresAt"), now)
                else "ISSUED",
                "assignedAt": doc.get("assignedAt"),
                "usedAt": doc.get("usedAt"),
                "expiresAt": doc.get("expiresAt"),
            }
            for doc in await store.codes_of_member(self.db, member_id)
        ]

    # -- inside a redemption's transaction ---------------------------------------------------------

    async def assign(
        self, db: Database, session: Any, now: datetime, gift: Document, quantity: int, order_id: str, member_id: str
    ) -> Document:
        """Give ``quantity`` codes of the gift's pool to the order; the order's virtual fields.

        Runs after the redemption took the stock: codes are taken soonest-expiry first; two
        redemptions racing for one code meet as a write conflict and the loser retries.
        """
        ids = []
        for _ in range(quantity):
            code = await store.take_available(
                db, gift["_id"], now, {"orderId": order_id, "memberId": member_id, "assignedAt": now}, session
            )
            if code is None:
                raise PoolShort("This gift is out of stock")
            ids.append(code["_id"])
        return {"kind": VIRTUAL, "couponCodeIds": ids, "cancelWindowMinutes": cancel_window_of(gift)}

    @staticmethod
    def fulfilled(order: Document, now: datetime) -> Document:
        """A virtual order's fields once its codes are the member's (at once, or when paid)."""
        return {
            "status": FULFILLED,
            "fulfilledAt": now,
            "cancelUntil": cancel_deadline(now, int(order.get("cancelWindowMinutes", 0))),
        }

    async def check_cancel(self, db: Database, session: Any, order: Document, now: datetime) -> None:
        """A virtual order may be cancelled while awaiting payment, or once fulfilled inside its
        window and with no code used; anything else raises."""
        if order["status"] == AWAITING_PAYMENT:
            return
        if order["status"] != FULFILLED:
            raise DomainError(
                f"A {order['status'].lower()} redemption cannot be cancelled",
                code="INVALID_STATE",
                status=order["status"],
            )
        codes = await store.codes_of_order(db, order["_id"], session)
        problem = cancel_refusal([c["status"] for c in codes], order.get("cancelUntil"), now)
        if problem is not None:
            message = {
                "COUPON_USED": "A coupon of this order was already used; the order cannot be cancelled",
                "CANCEL_WINDOW_CLOSED": "The time to cancel this coupon order has passed",
            }[problem]
            raise DomainError(message, code=str(problem), cancelUntil=_iso(order.get("cancelUntil")))

    async def release(self, db: Database, session: Any, order: Document, now: datetime) -> int:
        """The codes of a cancelled order go back to the pool (or to EXPIRED); the stock follows."""
        back = 0
        for code in await store.codes_of_order(db, order["_id"], session):
            to = status_after_return(code.get("expiresAt"), now)
            if await store.release(db, code["_id"], to, now, session) and to is CodeStatus.AVAILABLE:
                back += 1
        if back:
            await store.add_stock(db, order["giftId"], back, now, session)
        return back


def cancel_window_of(gift: Document) -> int:
    return int((gift.get("coupon") or {}).get("cancelWindowMinutes", DEFAULT_CANCEL_WINDOW_MINUTES))


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None
