"""Members: registration and reads. Balances are written only by the ledger."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from gateway.core.clock import Clock
from gateway.core.errors import BadInput, DomainError, member_not_found
from gateway.domain.ledger_rules import NEVER_DUE
from gateway.domain.program import Program
from gateway.domain.text import is_email, is_phone, unsafe_character
from gateway.domain.tiers import tier_for
from gateway.store.mongo import Database, Document

ZERO_BALANCES = {"available": 0, "pending": 0, "lifetimeEarned": 0, "spent": 0, "expired": 0}


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
        name = self.display_name.strip()
        if not 1 <= len(name) <= 80:
            raise BadInput("displayName must be 1 to 80 characters", field="displayName")
        if bad := unsafe_character(name, single_line=True):
            raise BadInput(f"displayName must be one line without control characters ({bad})", field="displayName")
        if self.email is not None and not is_email(self.email):
            raise BadInput("email is not a valid address", field="email")
        if self.phone is not None and not is_phone(self.phone):
            raise BadInput("phone is not a valid number", field="phone")
        if self.birthday is not None and not date(1900, 1, 1) <= self.birthday <= today:
            raise BadInput("birthday must be a past date", field="birthday")
        if self.member_id is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", self.member_id):
            raise BadInput("id may use letters, digits and _.:- (max 64)", field="id")
        return Registration(
            display_name=name,
            email=self.email.lower() if self.email else None,
            phone=self.phone,
            birthday=self.birthday,
            referrer_id=self.referrer_id,
            member_id=self.member_id,
        )


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
        "paidMember": False,
        "balances": dict(ZERO_BALANCES),
        "ledgerSeq": 0,
        "nextDueAt": NEVER_DUE,
    }


class Members:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def get(self, member_id: str, session: Any = None) -> Document:
        doc = await self.db.members.find_one({"_id": member_id}, session=session)
        if doc is None:
            raise member_not_found(member_id)
        return doc

    async def get_many(self, member_ids: list[str]) -> dict[str, Document]:
        cursor = self.db.members.find({"_id": {"$in": list(set(member_ids))}})
        return {doc["_id"]: doc async for doc in cursor}

    async def register(self, registration: Registration, program: Program) -> Document:
        """Explicit registration (seed 000 also joins members on first purchase)."""
        return await self.insert(new_member_document(registration, program, self.clock.now()))

    async def insert(self, doc: Document, session: Any = None) -> Document:
        """Insert a new member; the referrer must exist and duplicates are refused."""
        referrer = doc.get("referrerId")
        if referrer is not None:
            if referrer == doc["_id"]:
                raise BadInput("A member cannot refer themselves", field="referrerId")
            if await self.db.members.count_documents({"_id": referrer}, session=session) == 0:
                raise member_not_found(referrer)
        try:
            await self.db.members.insert_one(doc, session=session)
        except DuplicateKeyError as exc:
            field = "email" if "email" in str(exc) else "id"
            raise DomainError(
                f"A member with this {field} already exists", code="ALREADY_EXISTS", field=field
            ) from None
        return doc

    async def set_paid_member(self, member_id: str, paid: bool) -> Document:
        """Paid membership (付费会员) is bought outside the gateway; an admin records it here."""
        doc = await self.db.members.find_one_and_update(
            {"_id": member_id},
            {"$set": {"paidMember": paid, "paidMemberSince": self.clock.now() if paid else None}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise member_not_found(member_id)
        return doc
