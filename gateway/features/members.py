"""Members: registration and reads. Balances are written only by the ledger."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from gateway.core.clock import Clock, as_utc
from gateway.core.errors import BadInput, DomainError, member_not_found
from gateway.domain.ledger_rules import NEVER_DUE
from gateway.domain.member_search import InvalidFilter, MemberFilter, MemberOrder, Position
from gateway.domain.membership import Plan, Term, legacy_term
from gateway.domain.program import Program
from gateway.domain.text import is_email, is_phone, unsafe_character
from gateway.domain.tiers import tier_for
from gateway.store import members as members_store
from gateway.store.members import DuplicateMember
from gateway.store.mongo import Database, Document

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9][0-9 -]{5,19}$")
ZERO_BALANCES = {"available": 0, "pending": 0, "lifetimeEarned": 0, "spent": 0, "expired": 0, "held": 0}


def new_member_id() -> str:
    return "mem_" + secrets.token_hex(8)


@dataclass(frozen=True)
class Registration:
    display_name: str
    email: str | None = None
    phone: str | None = None
    birthday: date | None = None
    referrer_id: str | None = None
    member_id: str | None = None

    def validated(self, today: date) -> Registration:
        name = valid_display_name(self.display_name)
        valid_email(self.email)
        valid_phone(self.phone)
        valid_birthday(self.birthday, today)
        if self.member_id is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", self.member_id):
            raise BadInput("id may use letters, digits and _.:- (max 64)", field="id")
        return Registration(
            display_name=name,
            email=valid_email(self.email),
            phone=self.phone,
            birthday=self.birthday,
            referrer_id=self.referrer_id,
            member_id=self.member_id,
        )


def valid_display_name(value: str) -> str:
    name = value.strip()
    if not 1 <= len(name) <= 80:
        raise BadInput("displayName must be 1 to 80 characters", field="displayName")
    if bad := unsafe_character(name, single_line=True):
        raise BadInput(f"displayName must be one line without control characters ({bad})", field="displayName")
    return name


def valid_email(value: str | None) -> str | None:
    if value is not None and not is_email(value):
        raise BadInput("email is not a valid address", field="email")
    return value.lower() if value else None


def valid_phone(value: str | None) -> str | None:
    if value is not None and not is_phone(value):
        raise BadInput("phone is not a valid number", field="phone")
    return value


def valid_birthday(value: date | None, today: date) -> date | None:
    if value is not None and not date(1900, 1, 1) <= value <= today:
        raise BadInput("birthday must be a past date", field="birthday")
    return value


@dataclass(frozen=True)
class ProfileUpdate:
    """The profile fields to change; a field left out is ``None`` in ``fields`` terms: absent.

    ``changes`` maps displayName/email/phone/birthday to a new value, or None to clear
    (email, phone, birthday only).
    """

    changes: dict[str, Any]

    def validated(self, today: date) -> dict[str, Any]:
        """The stored fields to set."""
        out: dict[str, Any] = {}
        for name, value in self.changes.items():
            if name == "displayName":
                if value is None:
                    raise BadInput("displayName cannot be cleared", field="displayName")
                out[name] = valid_display_name(value)
            elif name == "email":
                out[name] = valid_email(value)
            elif name == "phone":
                out[name] = valid_phone(value)
            elif name == "birthday":
                birthday = valid_birthday(value, today)
                out[name] = birthday.isoformat() if birthday else None
            else:
                raise BadInput(f"{name} is not a profile field", field=name)
        if not out:
            raise BadInput("Nothing to change: give at least one profile field", field="input")
        return out


def new_member_document(reg: Registration, program: Program, now: datetime) -> Document:
    tier = tier_for(0, program.tiers)  # nothing spent or grown yet, whatever the basis
    return {
        "_id": reg.member_id or new_member_id(),
        "displayName": reg.display_name,
        "email": reg.email,
        "phone": reg.phone,
        "birthday": reg.birthday.isoformat() if reg.birthday else None,
        "registeredAt": now,
        "referrerId": reg.referrer_id,
        "tier": tier.code,
        "tierSince": now,
        "lifetimeSpend": 0,
        "growth": 0,
        "paidMembership": None,
        "balances": dict(ZERO_BALANCES),
        "ledgerSeq": 0,
        "nextDueAt": NEVER_DUE,
    }


def paid_term(doc: Document, timezone: str) -> Term | None:
    """The member's paid-membership term, if they ever had one (a pre-term flag counts as a yearly term)."""
    term = doc.get("paidMembership")
    if term:
        return Term(
            plan=Plan(term["plan"]),
            starts_at=as_utc(term["startsAt"]),
            months=term["months"],
            ends_at=as_utc(term["endsAt"]),
        )
    if doc.get("paidMember"):
        since = doc.get("paidMemberSince")
        return legacy_term(as_utc(since) if since else None, as_utc(doc["registeredAt"]), timezone)
    return None


def paid_member_at(doc: Document, instant: datetime, timezone: str) -> bool:
    """Whether the paid-member multiplier applies to something that happened at ``instant``."""
    term = paid_term(doc, timezone)
    return term is not None and term.active_at(as_utc(instant))


class Members:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def get(self, member_id: str, session: Any = None) -> Document:
        doc = await members_store.find(self.db, member_id, session)
        if doc is None:
            raise member_not_found(member_id)
        return doc

    async def get_many(self, member_ids: list[str]) -> dict[str, Document]:
        return await members_store.find_many(self.db, member_ids)

    async def register(self, registration: Registration, program: Program) -> Document:
        """Explicit registration (seed 000 also joins members on first purchase)."""
        return await self.insert(new_member_document(registration, program, self.clock.now()))

    async def insert(self, doc: Document, session: Any = None) -> Document:
        """Insert a new member; the referrer must exist and duplicates are refused."""
        referrer = doc.get("referrerId")
        if referrer is not None:
            if referrer == doc["_id"]:
                raise BadInput("A member cannot refer themselves", field="referrerId")
            if not await members_store.exists(self.db, referrer, session):
                raise member_not_found(referrer)
        try:
            await members_store.insert(self.db, doc, session)
        except DuplicateMember as exc:
            raise DomainError(
                f"A member with this {exc.field} already exists", code="ALREADY_EXISTS", field=exc.field
            ) from None
        return doc

    async def update_profile(self, member_id: str, update: ProfileUpdate, *, by_admin: bool) -> Document:
        """Change name, contact details or birthday (the member themself, or an admin).

        A member sets their birthday once; changing a recorded birthday takes an admin
        (BIRTHDAY_LOCKED), so the birthday multiplier cannot be moved to whatever day
        suits a big purchase. The check is part of the write's filter, so two concurrent
        first settings cannot both pass it.
        """
        fields = update.validated(self.clock.now().date())
        only_if: Document = {}
        if "birthday" in fields and not by_admin:
            only_if["$or"] = [{"birthday": None}, {"birthday": fields["birthday"]}]
        try:
            doc = await members_store.set_fields(
                self.db, member_id, {**fields, "profileUpdatedAt": self.clock.now()}, only_if=only_if
            )
        except DuplicateMember:
            raise DomainError("A member with this email already exists", code="ALREADY_EXISTS", field="email") from None
        if doc is None:
            await self.get(member_id)  # MEMBER_NOT_FOUND
            raise DomainError(
                "The birthday is already recorded; ask the operator to correct it",
                code="BIRTHDAY_LOCKED",
                field="birthday",
            )
        return doc

    async def search(
        self, member_filter: MemberFilter, *, order: MemberOrder, first: int, after: str | None
    ) -> list[Document]:
        """Up to ``first + 1`` members matching the filter, after the position ``after`` encodes
        (the extra one tells the caller there is a next page)."""
        position = None
        if after is not None:
            try:
                position = Position.decode(after, order)
            except ValueError:
                raise BadInput("after is not a valid cursor", field="after") from None
        return await members_store.search(self.db, member_filter, order=order, after=position, limit=first + 1)

    async def count(self, member_filter: MemberFilter) -> int:
        return await members_store.count_matching(self.db, member_filter)


def parse_filter(**raw: Any) -> MemberFilter:
    """``MemberFilter.parse`` with a bad field as BAD_USER_INPUT naming it."""
    try:
        return MemberFilter.parse(**raw)
    except InvalidFilter as exc:
        raise BadInput(str(exc), field=exc.field) from None
