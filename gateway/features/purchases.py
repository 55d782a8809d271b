"""Purchases and refunds: spend, growth, tier and the points an order earns (and gives back).

One order is one ``purchases`` document (order id unique per member) that
remembers what it paid, what it earned, which lot holds those points and how
much has been refunded, so a refund takes back exactly its share. Everything a
purchase or refund changes (member, purchase, lots, ledger, tier change,
idempotency record) is one transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.core.auth import Principal
from gateway.core.clock import Clock, as_utc
from gateway.core.errors import BadInput, DomainError, member_not_found, quote
from gateway.domain.calendar import local_date
from gateway.domain.campaigns import CODE
from gateway.domain.earning import (
    LineItem,
    allocate,
    is_birthday,
    is_member_day,
    line_items_problem,
    proportional_take_back,
    purchase_growth,
    purchase_points,
    referral_stands,
    refund_by_line,
)
from gateway.domain.holds import HoldStatus, deduction_cap_at_posting
from gateway.domain.money import MAX_ORDER_FEN, amount_problem
from gateway.features.campaigns import earn_campaign_bonuses
from gateway.features.members import Members, Registration, new_member_document, paid_member_at
from gateway.features.rule_earning import earn_by_rule
from gateway.features.tiering import add_growth, reevaluate
from gateway.ledger import EntryKind, Idempotency, Ledger, LedgerTx, Memo, Source
from gateway.store import deductions, purchases
from gateway.store import members as members_store
from gateway.store.mongo import Database, Document

ORDER_ID = re.compile(r"^[A-Za-z0-9_.:#/-]{1,100}$")
MAX_AMOUNT = MAX_ORDER_FEN  # ¥1,000,000: anything larger is a typo, not a purchase
CLOCK_SKEW = timedelta(minutes=5)


class OrderAlreadyRecorded(DomainError):
    code = "ORDER_ALREADY_RECORDED"


@dataclass(frozen=True)
class PurchaseRequest:
    member_id: str
    order_id: str
    amount: int
    paid_at: datetime | None = None
    display_name: str | None = None
    lines: tuple[LineItem, ...] = ()

    def validated(self, now: datetime) -> PurchaseRequest:
        if not ORDER_ID.match(self.order_id):
            raise BadInput("orderId must be 1 to 100 letters, digits or _.:#/-", field="orderId")
        if not 0 < self.amount <= MAX_AMOUNT:
            raise BadInput(f"amount {amount_problem(self.amount)}", field="amount")
        if self.lines:
            for line in self.lines:
                for code in (line.sku, line.category):
                    if code is not None and not CODE.match(code):
                        raise BadInput("sku and category are 1 to 64 letters, digits or _.:/-", field="lineItems")
            if problem := line_items_problem(self.amount, self.lines):
                raise BadInput(problem, field="lineItems")
        if self.paid_at is not None and as_utc(self.paid_at) > now + CLOCK_SKEW:
            raise BadInput("paidAt is in the future", field="paidAt")
        return self


@dataclass(frozen=True)
class RefundRequest:
    member_id: str
    order_id: str
    amount: int
    lines: tuple[tuple[str, int], ...] = ()  # (sku, refunded fen): the lines returned, if named

    def validated(self) -> RefundRequest:
        if not 0 < self.amount <= MAX_AMOUNT:
            raise BadInput(f"amount {amount_problem(self.amount)}", field="amount")
        if self.lines:
            skus = [sku for sku, _ in self.lines]
            if len(set(skus)) != len(skus) or any(amount <= 0 for _, amount in self.lines):
                raise BadInput("name each SKU once, with a positive amount", field="lines")
            if sum(amount for _, amount in self.lines) != self.amount:
                raise BadInput("the refunded lines must add up to the refund amount", field="lines")
        return self


class Purchases:
    def __init__(self, db: Database, clock: Clock, ledger: Ledger, members: Members) -> None:
        self.db = db
        self.clock = clock
        self.ledger = ledger
        self.members = members

    async def record(self, principal: Principal, request: PurchaseRequest, key: str) -> Document:
        """Record a paid order: join if needed, add spend and growth, re-tier, earn pending points."""
        request = request.validated(self.clock.now())
        idem = Idempotency.for_caller(
            principal,
            key,
            "recordPurchase",
            memberId=request.member_id,
            orderId=request.order_id,
            amount=request.amount,
            paidAt=as_utc(request.paid_at).isoformat() if request.paid_at else None,
            **({"lineItems": [[x.sku, x.category, x.amount] for x in request.lines]} if request.lines else {}),
        )

        async def work(tx: LedgerTx) -> Document:
            return await self._record(tx, request)

        return await self.ledger.transact(work, idempotency=idem)

    async def _join_if_needed(self, tx: LedgerTx, request: PurchaseRequest) -> bool:
        if await members_store.exists(tx.db, request.member_id, session=tx.session):
            return False
        if not tx.program.implicit_join_on_purchase:
            raise member_not_found(request.member_id)
        name = request.display_name or f"Member {request.member_id}"
        registration = Registration(display_name=name[:80], member_id=request.member_id).validated(tx.now.date())
        doc = new_member_document(registration, tx.program, tx.now)
        doc["joinedBy"] = "PURCHASE"
        await self.members.insert(doc, session=tx.session)
        return True

    async def _record(self, tx: LedgerTx, request: PurchaseRequest) -> Document:
        program = tx.program
        joined = await self._join_if_needed(tx, request)
        member = await tx.member(request.member_id)
        if await purchases.exists(tx.db, request.member_id, request.order_id, session=tx.session):
            raise OrderAlreadyRecorded(
                f"Order {quote(request.order_id)} is already recorded for this member", orderId=request.order_id
            )
        deducted = await self._post_checkout_hold(tx, request)
        paid_at = as_utc(request.paid_at) if request.paid_at else tx.now
        day = local_date(paid_at, program.timezone)
        birthday = datetime.fromisoformat(member["birthday"]).date() if member.get("birthday") else None
        tier_before = member.get("tier", program.tiers[0].code)
        earning = purchase_points(
            request.amount,
            program.earning,
            program.tier(tier_before),
            member_day=is_member_day(day, program.earning),
            birthday=is_birthday(day, birthday),
            paid_member=paid_member_at(member, paid_at, program.timezone),
        )
        available_at = paid_at + timedelta(days=program.pending_days)
        source = Source("ORDER", request.order_id)
        earned = await earn_by_rule(
            tx,
            request.member_id,
            "PURCHASE",
            earning.points,
            Memo(
                EntryKind.PURCHASE,
                f"Purchase {request.order_id}",
                source,
                {"multipliers": [{"rule": n, "percent": p} for n, p in earning.multiplier_percents]},
            ),
            available_at=available_at,
        )
        lines = request.lines or (LineItem(None, None, request.amount),)
        campaigns = await earn_campaign_bonuses(tx, request.member_id, request.order_id, lines, paid_at, available_at)
        first_purchase = not member.get("purchaseCount")
        referral = None
        if first_purchase and member.get("referrerId"):
            referral = await self._reward_referrer(tx, member, available_at)
        growth = purchase_growth(request.amount, program.growth)
        purchase: Document = {
            "memberId": request.member_id,
            "orderId": request.order_id,
            "amount": request.amount,
            "refunded": 0,
            "paidAt": paid_at,
            "recordedAt": tx.now,
            "pointsEarned": earned.points,
            "pointsRequested": earned.requested,
            "pointsTakenBack": 0,
            "lotIds": [t["lotId"] for t in earned.entry["lots"]] if earned.entry else [],
            "entryId": earned.entry["_id"] if earned.entry else None,
            "growth": growth,
            "growthTakenBack": 0,
            # per line: the share of the order's points (and of a campaign's bonus) it earned, so a
            # refund takes back what the returned lines earned (docs/campaigns.md)
            "lines": [
                {
                    "sku": line.sku,
                    "category": line.category,
                    "amount": line.amount,
                    "refunded": 0,
                    "points": points,
                    "campaignId": campaign_id,
                    "bonus": bonus,
                }
                for line, points, (campaign_id, bonus) in zip(
                    lines, allocate(earned.points, [x.amount for x in lines]), campaigns.line_bonus, strict=True
                )
            ],
            "campaigns": campaigns.given,
        }
        if referral is not None:  # what a refund of this first purchase may have to take back
            purchase["referral"] = {
                "referrerId": member["referrerId"],
                "entryId": referral["_id"],
                "points": referral["points"],
                "lotIds": [t["lotId"] for t in referral["lots"]],
                "revoked": False,
            }
        if not await purchases.insert(tx.db, purchase, session=tx.session):
            raise OrderAlreadyRecorded(
                f"Order {quote(request.order_id)} is already recorded for this member", orderId=request.order_id
            )
        member["lifetimeSpend"] = member.get("lifetimeSpend", 0) + request.amount
        member["purchaseCount"] = member.get("purchaseCount", 0) + 1
        await members_store.count_purchase(tx.db, request.member_id, request.amount, paid_at, session=tx.session)
        await add_growth(tx, request.member_id, growth, reason="Purchase", source=source.document())
        change = await reevaluate(tx, request.member_id, reason=f"Purchase {request.order_id}", allow_down=False)
        entry_ids = [earned.entry["_id"]] if earned.entry else []
        if deducted is not None:
            entry_ids.insert(0, deducted["_id"])
        entry_ids.extend(g["entryId"] for g in campaigns.given)
        if referral is not None:
            entry_ids.append(referral["_id"])
        return {
            "purchaseId": purchase["_id"],
            "memberId": request.member_id,
            "orderId": request.order_id,
            "joined": joined,
            "points": earned.points + campaigns.points,
            "bonusPoints": campaigns.points,
            "campaigns": [
                {"campaignId": g["campaignId"], "name": g["name"], "points": g["points"]} for g in campaigns.given
            ],
            "capped": earned.capped,
            "availableAt": available_at,
            "tierBefore": tier_before,
            "tierAfter": change.to_tier if change else tier_before,
            "pointsDeducted": -deducted["points"] if deducted is not None else 0,
            "entryIds": entry_ids,
        }

    async def _post_checkout_hold(self, tx: LedgerTx, request: PurchaseRequest) -> Document | None:
        """Points held at checkout for this order are spent now, if the order as really paid
        allows them: the cap is checked again against paid amount + the points' value. Over
        the cap, or past the hold's deadline, the whole purchase is refused (nothing applied)."""
        deduction = await deductions.held_for_order(tx.db, request.member_id, request.order_id, session=tx.session)
        if deduction is None:
            return None
        check = deduction_cap_at_posting(
            deduction["points"], deduction["valueFen"], request.amount, tx.program.deduction
        )
        if check.over_cap:
            raise DomainError(
                f"{deduction['points']} points were held on {request.order_id!r}, but an order of "
                f"{check.order_amount_fen} fen allows at most {check.max_points}",
                code="DEDUCTION_OVER_CAP",
                orderId=request.order_id,
                points=deduction["points"],
                maxPoints=check.max_points,
                orderAmount=check.order_amount_fen,
            )
        entry = await tx.post_hold(
            deduction["holdId"],
            Memo(
                EntryKind.DEDUCTION,
                f"Deduction at checkout on {request.order_id}",
                Source("ORDER", request.order_id),
                {"valueFen": deduction["valueFen"], "orderAmount": check.order_amount_fen},
            ),
        )
        posted = {"entryId": entry["_id"], "orderAmount": check.order_amount_fen, "settledAt": tx.now}
        await deductions.settle(tx.db, deduction, str(HoldStatus.POSTED), posted, session=tx.session)
        return entry

    async def _reward_referrer(self, tx: LedgerTx, member: Document, available_at: datetime) -> Document | None:
        """推荐奖励: the referrer earns once, on the referred member's first purchase, pending like it."""
        referrer_id = member["referrerId"]
        if not await members_store.exists(tx.db, referrer_id, session=tx.session):
            return None
        earned = await earn_by_rule(
            tx,
            referrer_id,
            "REFERRAL",
            tx.program.earning.referral_points,
            Memo(
                EntryKind.REFERRAL, f"Referred {member['_id']} made a first purchase", Source("REFERRAL", member["_id"])
            ),
            available_at=available_at,
        )
        return earned.entry

    async def refund(self, principal: Principal, request: RefundRequest, key: str) -> Document:
        """Refund all or part of an order: take back its share of points, spend and growth; re-tier."""
        request = request.validated()
        idem = Idempotency.for_caller(
            principal,
            key,
            "refundPurchase",
            memberId=request.member_id,
            orderId=request.order_id,
            amount=request.amount,
            **({"lines": [list(x) for x in request.lines]} if request.lines else {}),
        )

        async def work(tx: LedgerTx) -> Document:
            return await self._refund(tx, request)

        return await self.ledger.transact(work, idempotency=idem)

    async def _refund(self, tx: LedgerTx, request: RefundRequest) -> Document:
        member = await tx.member(request.member_id)
        purchase = await purchases.for_order(tx.db, request.member_id, request.order_id, session=tx.session)
        if purchase is None:
            raise DomainError(
                f"Order {quote(request.order_id)} is not recorded for this member",
                code="ORDER_NOT_FOUND",
                orderId=request.order_id,
            )
        refundable = purchase["amount"] - purchase["refunded"]
        if request.amount > refundable:
            raise BadInput(
                f"Only {refundable} fen of this order can still be refunded", field="amount", refundable=refundable
            )
        lines = lines_of(purchase)
        shares = refund_shares(lines, request)
        points = sum(
            proportional_take_back(line["points"], line["amount"], line["refunded"], share)
            for line, share in zip(lines, shares, strict=True)
        )
        growth = proportional_take_back(purchase["growth"], purchase["amount"], purchase["refunded"], request.amount)
        source = Source("ORDER", request.order_id)
        entry = None
        if points:
            entry = await tx.take_back(
                request.member_id,
                points,
                Memo(
                    EntryKind.REFUND,
                    f"Refund of {request.amount} fen on {request.order_id}",
                    source,
                    {"refundAmount": request.amount},
                ),
                lot_ids=purchase["lotIds"],
            )
        bonus_entries = await self._take_back_bonuses(tx, request, purchase, lines, shares)
        returned_entry = await self._return_deducted_points(tx, request, purchase)
        revoked = await self._revoke_referral(tx, request, purchase)
        bonus = sum(-e["points"] for _, e in bonus_entries)
        await purchases.add_refund(
            tx.db,
            purchase["_id"],
            request.amount,
            points,
            growth,
            line_refunds=shares if "lines" in purchase else None,
            bonus_taken_back={i: -e["points"] for i, e in bonus_entries},
            session=tx.session,
        )
        member["lifetimeSpend"] = member.get("lifetimeSpend", 0) - request.amount
        await members_store.add_lifetime_spend(tx.db, request.member_id, -request.amount, session=tx.session)
        await add_growth(tx, request.member_id, -growth, reason="Refund", source=source.document())
        tier_before = member["tier"]
        change = await reevaluate(tx, request.member_id, reason=f"Refund on {request.order_id}", allow_down=True)
        return {
            "purchaseId": purchase["_id"],
            "memberId": request.member_id,
            "orderId": request.order_id,
            "points": points + bonus,
            "bonusPoints": bonus,
            "shortfall": sum(e.get("shortfall", 0) for e in (entry, *(b for _, b in bonus_entries)) if e),
            "pointsReturned": -returned_entry["delta"]["spent"] if returned_entry else 0,
            "referralRevoked": revoked is not None,
            "tierBefore": tier_before,
            "tierAfter": change.to_tier if change else tier_before,
            "entryIds": [e["_id"] for e in (entry, *(b for _, b in bonus_entries), returned_entry, revoked) if e],
        }

    async def _take_back_bonuses(
        self, tx: LedgerTx, request: RefundRequest, purchase: Document, lines: list[Document], shares: list[int]
    ) -> list[tuple[int, Document]]:
        """Campaign bonuses come back with the lines that earned them: per campaign, the share of
        each refunded line's bonus (cumulatively, like the order's own points), from the bonus's
        own lot first. Returns (index of the campaign on the purchase, entry) pairs."""
        taken: list[tuple[int, Document]] = []
        for index, given in enumerate(purchase.get("campaigns", [])):
            points = sum(
                proportional_take_back(line["bonus"], line["amount"], line["refunded"], share)
                for line, share in zip(lines, shares, strict=True)
                if line.get("campaignId") == given["campaignId"]
            )
            if not points:
                continue
            entry = await tx.take_back(
                request.member_id,
                points,
                Memo(
                    EntryKind.REFUND,
                    f"Refund of {request.amount} fen on {request.order_id}: campaign bonus taken back",
                    Source("CAMPAIGN", given["campaignId"]),
                    {"refundAmount": request.amount, "orderId": request.order_id},
                ),
                lot_ids=given["lotIds"],
            )
            taken.append((index, entry))
        return taken

    async def _revoke_referral(self, tx: LedgerTx, request: RefundRequest, purchase: Document) -> Document | None:
        """A referral reward stands on a kept first purchase (docs/points.md): once refunds leave
        less than a qualifying purchase, the referrer's reward is taken back like a refund takes
        back earned points (from its own lot first; any shortfall as the program says)."""
        referral = purchase.get("referral")
        if not referral or referral["revoked"]:
            return None
        refunded = purchase["refunded"] + request.amount
        if referral_stands(purchase["amount"], refunded, tx.program.tiers[0].threshold):
            return None
        entry = await tx.take_back(
            referral["referrerId"],
            referral["points"],
            Memo(
                EntryKind.REFERRAL_REVOKED,
                f"Referral taken back: {request.member_id} refunded their first purchase {request.order_id}",
                Source("REFERRAL", request.member_id),
                {"orderId": request.order_id},
            ),
            lot_ids=referral["lotIds"],
        )
        await purchases.mark_referral_revoked(tx.db, purchase["_id"], entry["_id"], session=tx.session)
        return entry

    async def _return_deducted_points(
        self, tx: LedgerTx, request: RefundRequest, purchase: Document
    ) -> Document | None:
        """Points the member paid with at checkout (积分抵扣) come back with the refund, in the
        same share as the money: the refunded part of the order, cumulatively, into the
        lots they were taken from (original expiry)."""
        deduction = await deductions.for_order(tx.db, request.member_id, request.order_id, session=tx.session)
        if deduction is None or deduction.get("status", HoldStatus.POSTED) != HoldStatus.POSTED:
            return None  # held or voided points were never spent on this order
        share = proportional_take_back(deduction["points"], purchase["amount"], purchase["refunded"], request.amount)
        if share == 0:
            return None
        spend_entry = await tx.entry(deduction["entryId"])
        return await tx.restore(
            request.member_id,
            spend_entry,
            Memo(
                EntryKind.DEDUCTION_RETURN,
                f"Refund of {request.amount} fen on {request.order_id}: deducted points returned",
                Source("ORDER", request.order_id),
            ),
            points=share,
        )


def lines_of(purchase: Document) -> list[Document]:
    """The order's lines as recorded; an order recorded before line items is one line."""
    if "lines" in purchase:
        return list(purchase["lines"])
    return [
        {
            "sku": None,
            "category": None,
            "amount": purchase["amount"],
            "refunded": purchase["refunded"],
            "points": purchase["pointsEarned"],
            "campaignId": None,
            "bonus": 0,
        }
    ]


def refund_shares(lines: list[Document], request: RefundRequest) -> list[int]:
    """Fen refunded per line: the lines the refund names, or the amount spread over what each line
    can still refund (``refund_by_line``)."""
    if not request.lines:
        return refund_by_line([(line["amount"], line["refunded"]) for line in lines], request.amount)
    index = {line["sku"]: i for i, line in enumerate(lines) if line.get("sku") is not None}
    shares = [0] * len(lines)
    for sku, amount in request.lines:
        if sku not in index:
            raise BadInput(f"The order has no line with SKU {quote(sku)}", field="lines")
        line = lines[index[sku]]
        if amount > line["amount"] - line["refunded"]:
            raise BadInput(
                f"Only {line['amount'] - line['refunded']} fen of SKU {quote(sku)} can still be refunded",
                field="lines",
                refundable=line["amount"] - line["refunded"],
            )
        shares[index[sku]] = amount
    return shares
