"""The gift catalog (积分商城): gifts, their stock, listing windows, limits and flash offers.

Gifts live in the ``gifts`` collection. Whether a gift is on sale is derived at every
instant from its ``listed`` flag, listing window and stock (see ``domain.catalog.status``):
a gift at zero stock is off sale without anyone flipping a flag, and a restock puts it
back. Stock only moves with ``$inc`` (redemptions take it inside their transaction), so
an admin edit never overwrites a concurrent sale.

Admin edits are compare-and-set on the gift's ``version`` (raised by every edit, not
by stock moves): an edit that merges onto the stored gift is re-applied when another
edit saved first, so concurrent admins never lose a change, and an edit sent with
``expectedVersion`` gets CONFLICT instead when the gift changed since that version.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.core.auth import Principal
from gateway.core.clock import Clock, as_utc
from gateway.core.errors import BadInput, Conflict, DomainError, NotFound
from gateway.core.permissions import Permission, allows
from gateway.domain.calendar import Period
from gateway.domain.catalog import (
    Eligibility,
    GiftRules,
    Limits,
    Offer,
    UsageKey,
    default_min_tier,
    eligibility,
    limit_since,
    storefront_visible,
    units_in_windows,
)
from gateway.domain.coupons import DEFAULT_CANCEL_WINDOW_MINUTES, PHYSICAL, VIRTUAL, cancel_window_problem
from gateway.domain.member_status import status_of
from gateway.domain.money import MAX_ORDER_FEN, amount_problem
from gateway.domain.program import Program
from gateway.domain.text import unsafe_character
from gateway.domain.tiers import tier_rank
from gateway.features.admin_audit import Recorder, audited
from gateway.store import coupons as coupon_codes
from gateway.store import gifts
from gateway.store import redemptions as redemptions_store
from gateway.store.mongo import Database, Document

URL = re.compile(r"^https?://\S+$")
MAX_POINTS = 100_000_000
MAX_FEN = MAX_ORDER_FEN
MAX_ATTEMPTS = 50


def version_of(doc: Document) -> int:
    """A gift's edit version; gifts stored before versioning count as 0."""
    return int(doc.get("version", 0))


def gift_not_found(gift_id: str) -> NotFound:
    return NotFound(f"Gift {gift_id!r} not found", code="GIFT_NOT_FOUND")


def new_gift_id() -> str:
    return "gift_" + secrets.token_hex(8)


@dataclass(frozen=True)
class GiftSpec:
    """Everything an operator sets on a gift except stock, which only moves by increments."""

    name: str
    category: str
    cost_price: int
    points: int
    cash: int = 0
    description: str = ""
    image_url: str | None = None
    min_tier: str | None = None
    limits: Limits = Limits()
    listed: bool = True
    list_from: datetime | None = None
    list_until: datetime | None = None

    def validated(self, program: Program) -> GiftSpec:
        name, category = self.name.strip(), self.category.strip()
        if not 1 <= len(name) <= 120:
            raise BadInput("name must be 1 to 120 characters", field="name")
        if bad := unsafe_character(name, single_line=True):
            raise BadInput(f"name must be one line without control characters ({bad})", field="name")
        if not 1 <= len(category) <= 40:
            raise BadInput("category must be 1 to 40 characters", field="category")
        if len(self.description) > 4000:
            raise BadInput("description must be at most 4000 characters", field="description")
        if self.image_url is not None and not URL.match(self.image_url):
            raise BadInput("imageUrl must be an http(s) URL", field="imageUrl")
        if not 0 <= self.cost_price <= MAX_FEN:
            raise BadInput(f"costPrice {amount_problem(self.cost_price, allow_zero=True)}", field="costPrice")
        if not 1 <= self.points <= MAX_POINTS:
            raise BadInput("points must be positive (a gift always costs points)", field="points")
        if not 0 <= self.cash <= MAX_FEN:
            raise BadInput(f"cash {amount_problem(self.cash, allow_zero=True)}", field="cash")
        if self.cash > self.cost_price:
            raise BadInput("the cash part cannot exceed the cost price", field="cash")
        min_tier = self.min_tier or default_min_tier(program.tiers)
        if tier_rank(min_tier, program.tiers) is None:
            known = ", ".join(t.code for t in program.tiers)
            raise BadInput(f"minTier must be one of the program's tiers ({known})", field="minTier")
        limits = self.limits
        if (limits.per_member is None) != (limits.period is None):
            raise BadInput("a per-member limit needs both a count and a period", field="limits")
        for value, field in ((limits.per_member, "perMember"), (limits.per_order, "perOrder")):
            if value is not None and value < 1:
                raise BadInput(f"{field} must be at least 1", field=field)
        if self.list_from and self.list_until and as_utc(self.list_until) <= as_utc(self.list_from):
            raise BadInput("the listing must end after it starts", field="endsAt")
        return dataclasses.replace(
            self,
            name=name,
            category=category,
            min_tier=min_tier,
            list_from=as_utc(self.list_from) if self.list_from else None,
            list_until=as_utc(self.list_until) if self.list_until else None,
        )

    def fields(self) -> Document:
        """The stored fields this spec owns."""
        return {
            "name": self.name,
            "description": self.description,
            "imageUrl": self.image_url,
            "category": self.category,
            "costPrice": self.cost_price,
            "points": self.points,
            "cash": self.cash,
            "minTier": self.min_tier,
            "limits": {
                "perMember": self.limits.per_member,
                "period": str(self.limits.period) if self.limits.period else None,
                "perOrder": self.limits.per_order,
            },
            "listed": self.listed,
            "listFrom": self.list_from,
            "listUntil": self.list_until,
        }


def spec_of(doc: Document) -> GiftSpec:
    return GiftSpec(
        name=doc["name"],
        category=doc["category"],
        cost_price=doc["costPrice"],
        points=doc["points"],
        cash=doc["cash"],
        description=doc.get("description", ""),
        image_url=doc.get("imageUrl"),
        min_tier=doc["minTier"],
        limits=limits_of(doc),
        listed=doc["listed"],
        list_from=doc.get("listFrom"),
        list_until=doc.get("listUntil"),
    )


def limits_of(doc: Document) -> Limits:
    raw = doc.get("limits") or {}
    period = raw.get("period")
    return Limits(
        per_member=raw.get("perMember"), period=Period(period) if period else None, per_order=raw.get("perOrder")
    )


def rules_of(doc: Document) -> GiftRules:
    """The rule view of a stored gift."""
    offer = doc.get("offer")
    return GiftRules(
        points=doc["points"],
        cash=doc["cash"],
        cost_price=doc["costPrice"],
        stock=doc["stock"],
        listed=doc["listed"],
        list_from=doc.get("listFrom"),
        list_until=doc.get("listUntil"),
        min_tier=doc["minTier"],
        limits=limits_of(doc),
        offer=Offer(points=offer["points"], starts_at=offer["startsAt"], ends_at=offer["endsAt"]) if offer else None,
    )


def visible_to(doc: Document, principal: Principal | None) -> bool:
    """Whether ``principal`` may see this gift at all: admins see every gift, anyone else only
    what the storefront shows (``domain.catalog.storefront_visible``)."""
    if allows(principal, Permission.CATALOG_MANAGE):
        return True
    return storefront_visible(doc.get("listed") is True)


def gift_cursor(doc: Document) -> str:
    """Position of a gift in the storefront order: creation time, then id."""
    return f"{as_utc(doc['createdAt']).isoformat()}|{doc['_id']}"


def parse_gift_cursor(value: str) -> tuple[datetime, str]:
    created, sep, gift_id = value.partition("|")
    try:
        instant = datetime.fromisoformat(created)
    except ValueError:
        instant = None
    if not sep or instant is None:
        raise BadInput("after is not a valid cursor", field="after")
    return as_utc(instant), gift_id


class Catalog:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def get(self, gift_id: str, session: Any = None) -> Document:
        doc = await gifts.find(self.db, gift_id, session)
        if doc is None:
            raise gift_not_found(gift_id)
        return doc

    async def get_many(self, gift_ids: list[str]) -> dict[str, Document]:
        return await gifts.find_many(self.db, gift_ids)

    async def create(
        self,
        spec: GiftSpec,
        stock: int,
        program: Program,
        gift_id: str | None = None,
        *,
        kind: str = PHYSICAL,
        cancel_window_minutes: int | None = None,
        audit: Recorder | None = None,
    ) -> Document:
        """A new gift. A VIRTUAL gift (a coupon) starts with stock 0: its stock is its code pool's
        unused codes (``gateway.features.coupons``)."""
        spec = spec.validated(program)
        if not 0 <= stock <= MAX_POINTS:
            raise BadInput("stock must be a non-negative count", field="stock")
        virtual: Document = {}
        if kind == VIRTUAL:
            if stock:
                raise BadInput("a virtual gift's stock is its unused codes: import or generate codes", field="stock")
            window = DEFAULT_CANCEL_WINDOW_MINUTES if cancel_window_minutes is None else cancel_window_minutes
            if problem := cancel_window_problem(window):
                raise BadInput(problem, field="cancelWindowMinutes")
            virtual = {"coupon": {"cancelWindowMinutes": window}}
        elif cancel_window_minutes is not None:
            raise BadInput("only a virtual gift has a cancel window", field="cancelWindowMinutes")
        now = self.clock.now()
        doc = {
            "_id": gift_id or new_gift_id(),
            **spec.fields(),
            "kind": kind,
            **virtual,
            "stock": stock,
            "redeemed": 0,
            "offer": None,
            "version": 1,
            "createdAt": now,
            "updatedAt": now,
        }

        async def work(session: Any) -> None:
            await gifts.insert(self.db, doc, session)
            if audit is not None:
                await audit(session, doc["_id"], {"name": doc["name"], "points": spec.points, "stock": stock})

        await audited(self.db, audit, work)
        return doc

    async def update(
        self,
        gift_id: str,
        changes: dict[str, Any],
        program: Program,
        *,
        expected_version: int | None = None,
        audit: Recorder | None = None,
    ) -> Document:
        """Apply ``changes`` (GiftSpec field names) on top of the stored gift, validating the result."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(GiftSpec)}
        if unknown:
            raise BadInput(f"unknown gift fields: {sorted(unknown)}")

        def edit(current: Document) -> Document:
            return dataclasses.replace(spec_of(current), **changes).validated(program).fields()

        return await self._edit(gift_id, edit, expected_version, audit)

    async def _edit(
        self, gift_id: str, edit: Any, expected_version: int | None, audit: Recorder | None = None
    ) -> Document:
        """Read, compute the fields to set from what was read, save only if nobody saved in between
        (with ``audit``, each attempt is one transaction with its entry: the fields set)."""

        async def attempt(session: Any) -> Document | None:
            current = await self.get(gift_id, session)
            version = version_of(current)
            if expected_version is not None and expected_version != version:
                raise Conflict(
                    f"Gift {gift_id!r} changed (version {version}, you edited version {expected_version}); "
                    "reload and retry",
                    currentVersion=version,
                )
            fields = edit(current)
            doc = await gifts.set_at_version(self.db, gift_id, version, fields, self.clock.now(), session)
            if doc is not None and audit is not None:
                await audit(session, gift_id, {"version": doc.get("version"), "fields": fields})
            return doc

        for _ in range(MAX_ATTEMPTS):
            doc = await audited(self.db, audit, attempt)
            if doc is not None:
                return doc
        raise Conflict(f"Gift {gift_id!r} is being changed by others; retry")

    async def restock(self, gift_id: str, quantity: int, *, audit: Recorder | None = None) -> Document:
        """Add stock; a sold-out gift is back on sale the moment this commits."""
        if not 1 <= quantity <= MAX_POINTS:
            raise BadInput("quantity must be positive", field="quantity")
        if (await self.get(gift_id)).get("kind") == VIRTUAL:
            raise DomainError(
                "A virtual gift's stock is its unused codes: import or generate codes", code="STOCK_FROM_CODE_POOL"
            )

        async def work(session: Any) -> Document:
            doc = await gifts.add_stock(self.db, gift_id, quantity, self.clock.now(), session)
            if doc is None:
                raise gift_not_found(gift_id)
            if audit is not None:
                await audit(session, gift_id, {"quantity": quantity, "stock": doc["stock"]})
            return doc

        return await audited(self.db, audit, work)

    async def set_listed(self, gift_id: str, listed: bool, *, audit: Recorder | None = None) -> Document:
        """List now (dropping a start time still in the future, or an end already past) or unlist."""
        now = self.clock.now()

        def edit(current: Document) -> Document:
            fields: Document = {"listed": listed}
            if listed:
                if current.get("listFrom") and as_utc(current["listFrom"]) > now:
                    fields["listFrom"] = None
                if current.get("listUntil") and as_utc(current["listUntil"]) <= now:
                    fields["listUntil"] = None
            return fields

        return await self._edit(gift_id, edit, None, audit)

    async def schedule(
        self,
        gift_id: str,
        starts_at: datetime,
        ends_at: datetime | None,
        program: Program,
        *,
        audit: Recorder | None = None,
    ) -> Document:
        """定时上架: on sale from ``starts_at`` until ``ends_at`` (open-ended if None)."""
        changes = {"listed": True, "list_from": starts_at, "list_until": ends_at}
        return await self.update(gift_id, changes, program, audit=audit)

    async def set_offer(
        self, gift_id: str, points: int, starts_at: datetime, ends_at: datetime, *, audit: Recorder | None = None
    ) -> Document:
        """限时兑换: a special points price in force for starts_at <= now < ends_at; replaces any offer."""
        if not 1 <= points <= MAX_POINTS:
            raise BadInput("offer points must be positive", field="points")
        if as_utc(ends_at) <= as_utc(starts_at):
            raise BadInput("the offer must end after it starts", field="endsAt")
        offer = {"points": points, "startsAt": as_utc(starts_at), "endsAt": as_utc(ends_at)}
        return await self._set(gift_id, {"offer": offer}, audit)

    async def clear_offer(self, gift_id: str, *, audit: Recorder | None = None) -> Document:
        return await self._set(gift_id, {"offer": None}, audit)

    async def delete(self, gift_id: str, *, audit: Recorder | None = None) -> None:
        """Only a gift nobody ever redeemed may go: orders keep pointing at their gift.

        ``redeemed`` is raised in the same transaction as every sale, so the filtered
        delete cannot slip between a redemption's check and its commit.
        """
        virtual = (await self.get(gift_id)).get("kind") == VIRTUAL

        async def work(session: Any) -> bool:
            if not await gifts.delete_unredeemed(self.db, gift_id, session):
                return False
            if virtual:  # a coupon nobody redeemed: its pool goes with it (no code was ever given)
                await coupon_codes.delete_pool(self.db, gift_id, session)
            if audit is not None:
                await audit(session, gift_id, {})
            return True

        if await (self.db.transaction(work) if virtual else audited(self.db, audit, work)):
            return
        raise DomainError("This gift has been redeemed; unlist it instead of deleting it", code="GIFT_HAS_REDEMPTIONS")

    async def page(
        self,
        *,
        first: int,
        after: str | None,
        category: str | None,
        offered_only: bool,
        include_unlisted: bool,
        now: datetime | None = None,
    ) -> list[Document]:
        """``first + 1`` gifts in creation order (ties by id) after the cursor, as on sale at ``now``."""
        now = now or self.clock.now()
        if include_unlisted:
            query: Document = {}
        elif offered_only:
            query = gifts.offered_query(now)
        else:
            query = gifts.visible_query(now)
        position = parse_gift_cursor(after) if after is not None else None
        return await gifts.page(self.db, query=query, category=category, after=position, limit=first + 1)

    async def _set(self, gift_id: str, fields: Document, audit: Recorder | None = None) -> Document:
        async def work(session: Any) -> Document:
            doc = await gifts.set_fields(self.db, gift_id, fields, self.clock.now(), session)
            if doc is None:
                raise gift_not_found(gift_id)
            if audit is not None:
                await audit(session, gift_id, {"version": doc.get("version"), "fields": fields})
            return doc

        return await audited(self.db, audit, work)


async def used_in_window(
    db: Database,
    member_id: str,
    gift_rules: Mapping[str, GiftRules],
    now: datetime,
    timezone: str,
    session: Any = None,
) -> dict[str, int]:
    """Units of each gift (by id) the member ordered (not cancelled) inside that gift's limit window.

    One query for any number of gifts: the earliest window start bounds it, each
    gift then counts only its own window. Gifts without a per-member limit count 0.
    """
    since = {gift_id: limit_since(rules, now, timezone) for gift_id, rules in gift_rules.items()}
    limited = [(member_id, gid, start) for gid, start in since.items() if start is not None]
    used = dict.fromkeys(since, 0)
    for (_, gift_id, _), units in zip(limited, await units_ordered(db, limited, session=session), strict=True):
        used[gift_id] = units
    return used


async def units_ordered(db: Database, keys: list[UsageKey], *, session: Any = None) -> list[int]:
    """For each (member, gift, window start): units ordered since then, cancelled orders excluded.

    One query for any number of keys (the request's usage loader and a redemption's
    limit check both count this way).
    """
    if not keys:
        return []
    orders = await redemptions_store.orders_since(
        db,
        member_ids=sorted({k[0] for k in keys}),
        gift_ids=sorted({k[1] for k in keys}),
        since=min(k[2] for k in keys),
        session=session,
    )
    return units_in_windows([(o["memberId"], o["giftId"], as_utc(o["createdAt"]), o["quantity"]) for o in orders], keys)


async def eligibilities(
    db: Database,
    member: Document,
    gift_docs: list[Document],
    program: Program,
    now: datetime,
    *,
    quantity: int = 1,
    session: Any = None,
    rules: Mapping[str, GiftRules] | None = None,
) -> dict[str, Eligibility]:
    """Can ``member`` redeem ``quantity`` of each gift at ``now``? One query for the whole page.

    The one assembly of the eligibility rule's inputs: the storefront asks it for a page of
    gifts, a redemption for its one gift inside its transaction, so the two never disagree.
    ``rules``: the gifts' ``rules_of`` by id, when the caller has them already.
    """
    known = rules or {}
    gift_rules = {doc["_id"]: known.get(doc["_id"]) or rules_of(doc) for doc in gift_docs}
    used = await used_in_window(db, member["_id"], gift_rules, now, program.timezone, session=session)
    tier, available, account = member["tier"], member["balances"]["available"], status_of(member)
    return {
        doc["_id"]: eligibility(
            gift_rules[doc["_id"]],
            member_tier=tier,
            available_points=available,
            used_in_window=used[doc["_id"]],
            quantity=quantity,
            now=now,
            tiers=program.tiers,
            member_status=account,
        )
        for doc in gift_docs
    }
