"""Coalition partners' configuration (SPEC section 5): create, read, update, rotate credentials.

A partner is a merchant sharing the coalition points currency. Admins configure it;
the rules read from its configuration are ``gateway.domain.partner_terms``. Member
links, operations and statements are their own features (``partner_links``,
``partner_operations``, ``partner_statements``).
"""

from __future__ import annotations

import secrets
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from gateway.core.auth import hash_api_key, new_api_key
from gateway.core.clock import Clock
from gateway.core.errors import DomainError, NotFound, quote
from gateway.domain.partner_commands import daily_usage
from gateway.domain.partner_terms import LIMIT_FIELDS, PartnerTerms, check_partner_id
from gateway.features.admin_audit import Recorder, audited
from gateway.store import partners as store
from gateway.store.mongo import Database, Document
from gateway.store.program import load_program

SIGNING_SECRET_PREFIX = "lgs_"


def partner_not_found(partner_id: str) -> NotFound:
    return NotFound(f"Partner {quote(partner_id)} not found", code="PARTNER_NOT_FOUND")


def new_signing_secret() -> str:
    return SIGNING_SECRET_PREFIX + secrets.token_urlsafe(32)


class Partners:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def get(self, partner_id: str) -> Document:
        doc = await store.find_partner(self.db, partner_id)
        if doc is None:
            raise partner_not_found(partner_id)
        return doc

    async def all(self) -> list[Document]:
        return await store.all_partners(self.db)

    async def exists(self, partner_id: str) -> bool:
        return await store.partner_exists(self.db, partner_id)

    async def create(
        self, terms: PartnerTerms, partner_id: str | None = None, *, audit: Recorder | None = None
    ) -> tuple[Document, str, str]:
        """A new partner; returns it with its API key and signing secret (shown only now)."""
        if partner_id is not None:
            check_partner_id(partner_id)
        fields = terms.new_partner()
        api_key, secret = new_api_key(), new_signing_secret()
        now = self.clock.now()
        doc: Document = {
            "_id": partner_id or "ptn_" + secrets.token_hex(6),
            **fields,
            "apiKeyHash": hash_api_key(api_key),
            "signingSecret": secret,
            "createdAt": now,
            "updatedAt": now,
            "keyRotatedAt": now,
        }

        async def work(session: Any) -> None:
            if not await store.insert_partner(self.db, doc, session):
                raise DomainError("A partner with this id already exists", code="ALREADY_EXISTS", field="id")
            if audit is not None:  # the terms, never the credentials
                await audit(session, doc["_id"], fields)

        await audited(self.db, audit, work)
        return doc, api_key, secret

    async def rotate_key(self, partner_id: str, *, audit: Recorder | None = None) -> tuple[Document, str, str]:
        """New API key and signing secret; the old ones stop working at once."""
        api_key, secret = new_api_key(), new_signing_secret()
        credentials = {"apiKeyHash": hash_api_key(api_key), "signingSecret": secret, "keyRotatedAt": self.clock.now()}

        async def work(session: Any) -> Document:
            doc = await store.update_partner(self.db, partner_id, credentials, session)
            if doc is None:
                raise partner_not_found(partner_id)
            if audit is not None:
                await audit(session, partner_id, {"keyRotatedAt": credentials["keyRotatedAt"]})
            return doc

        return await audited(self.db, audit, work), api_key, secret

    async def update(self, partner_id: str, terms: PartnerTerms, *, audit: Recorder | None = None) -> Document:
        fields = terms.document()
        if "settlementMilliFenPerPoint" in fields:
            # Operations made before rates were recorded on them keep the rate they were made at.
            await store.remember_legacy_rate(self.db, partner_id)

        async def work(session: Any) -> Document:
            doc = await store.update_partner(self.db, partner_id, {**fields, "updatedAt": self.clock.now()}, session)
            if doc is None:
                raise partner_not_found(partner_id)
            if audit is not None:
                await audit(session, partner_id, fields)
            return doc

        doc = await audited(self.db, audit, work)
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
        local_day = self.clock.now().astimezone(zone).date()
        day_start = datetime.combine(local_day, time.min, tzinfo=zone)
        used = dict.fromkeys(LIMIT_FIELDS, 0)
        for op in await store.operations_since(self.db, partner["_id"], day_start):
            if op["type"] in used:
                used[op["type"]] += daily_usage(op)
        await store.seed_daily(self.db, partner["_id"], local_day.isoformat(), {op: used[op] for op in limited})
