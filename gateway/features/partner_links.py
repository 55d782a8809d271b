"""Member links to partners, proven by both sides, and their history.

A link lets a partner act on a member, known to it by its own customer ref. It is
made by one of:

- **a link code** (the member's consent and the partner's proof): the member creates
  a short-lived one-time code in the storefront (``create_code``) and hands it to the
  partner, who redeems it with its API key and its own customer ref (``redeem_code``).
  Neither side alone can link: the member never names a ref, the partner never names
  a member.
- **an admin**, directly (``link``), for support cases.

Every link and unlink is recorded in ``partner_link_events`` (who, how, which ref,
the ref it replaced) in the same transaction as the change.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from gateway.core.auth import Principal, Role
from gateway.core.clock import Clock
from gateway.core.errors import DomainError
from gateway.domain.partner_links import (
    CODE_ALPHABET,
    CODE_LENGTH,
    LinkAction,
    LinkVia,
    check_partner_member_ref,
    code_from_indexes,
    code_hash,
    invalid_code,
)
from gateway.domain.partner_terms import require_active
from gateway.features.admin_audit import Recorder
from gateway.features.members import Members
from gateway.features.partners import Partners
from gateway.store import partners as store
from gateway.store.mongo import Database, Document


class PartnerLinks:
    def __init__(self, db: Database, clock: Clock, partners: Partners, members: Members, code_ttl: timedelta) -> None:
        self.db = db
        self.clock = clock
        self.partners = partners
        self.members = members
        self.code_ttl = code_ttl

    async def create_code(self, member_id: str, partner_id: str) -> tuple[str, Document]:
        """A new one-time code for this member and partner (replacing any outstanding one); shown only now."""
        require_active(await self.partners.get(partner_id))
        await self.members.get(member_id)
        code = code_from_indexes([secrets.randbelow(len(CODE_ALPHABET)) for _ in range(CODE_LENGTH)])
        now = self.clock.now()
        doc: Document = {
            "_id": store.link_id(partner_id, member_id),
            "partnerId": partner_id,
            "memberId": member_id,
            "codeHash": code_hash(code),
            "createdAt": now,
            "expiresAt": now + self.code_ttl,
        }
        await store.save_link_code(self.db, doc)
        return code, doc

    async def redeem_code(self, partner: Principal, code: str, partner_member_ref: str) -> Document:
        """The partner proves the link: a live code of its own, and its customer ref for that member."""
        ref = check_partner_member_ref(partner_member_ref)
        hashed = code_hash(code)
        require_active(await self.partners.get(partner.subject))

        async def work(session: Any) -> Document:
            taken = await store.take_link_code(self.db, hashed, partner.subject, self.clock.now(), session=session)
            if taken is None:
                raise invalid_code()
            return await self._link(session, partner.subject, taken["memberId"], ref, LinkVia.CODE, partner)

        return await self.db.transaction(work)

    async def link(
        self,
        admin: Principal,
        member_id: str,
        partner_id: str,
        partner_member_ref: str,
        *,
        audit: Recorder | None = None,
    ) -> Document:
        """An operator links directly (support cases); recorded like every link."""
        ref = check_partner_member_ref(partner_member_ref)
        require_active(await self.partners.get(partner_id))
        await self.members.get(member_id)

        async def work(session: Any) -> Document:
            linked = await self._link(session, partner_id, member_id, ref, LinkVia.ADMIN, admin)
            if audit is not None:
                await audit(session, member_id, {"partnerId": partner_id, "partnerMemberRef": ref})
            return linked

        return await self.db.transaction(work)

    async def unlink(self, actor: Principal, member_id: str, partner_id: str, *, audit: Recorder | None = None) -> bool:
        """Withdraw consent; the partner can no longer act on the member (its past operations stay)."""

        async def work(session: Any) -> bool:
            removed = await store.delete_link(self.db, partner_id, member_id, session=session)
            if removed is None:
                return False
            via = LinkVia.MEMBER if actor.role is Role.MEMBER else LinkVia.ADMIN
            event = self._event(LinkAction.UNLINKED, via, removed, actor, previous_ref=None)
            await store.insert_link_event(self.db, event, session=session)
            if audit is not None:
                await audit(session, member_id, {"partnerId": partner_id})
            return True

        return await self.db.transaction(work)

    async def links_for_member(self, member_id: str) -> list[Document]:
        return await store.links_of_member(self.db, member_id)

    async def history(self, *, member_id: str | None, partner_id: str | None, limit: int) -> list[Document]:
        return await store.link_events(self.db, member_id=member_id, partner_id=partner_id, limit=limit)

    async def _link(
        self, session: Any, partner_id: str, member_id: str, ref: str, via: LinkVia, actor: Principal
    ) -> Document:
        previous = await store.find_link(self.db, partner_id, member_id, session=session)
        doc: Document = {
            "_id": store.link_id(partner_id, member_id),
            "partnerId": partner_id,
            "memberId": member_id,
            "partnerMemberRef": ref,
            "linkedAt": self.clock.now(),
            "linkedVia": via.value,
            "linkedBy": {"role": actor.role.value, "id": actor.subject},
        }
        try:
            await store.save_link(self.db, doc, session=session)
        except store.RefTaken:
            raise DomainError(
                "Another member is already linked with this partnerMemberRef",
                code="PARTNER_REF_TAKEN",
                field="partnerMemberRef",
            ) from None
        previous_ref = previous["partnerMemberRef"] if previous else None
        event = self._event(LinkAction.LINKED, via, doc, actor, previous_ref=previous_ref)
        await store.insert_link_event(self.db, event, session=session)
        return doc

    def _event(
        self, action: LinkAction, via: LinkVia, link: Document, actor: Principal, *, previous_ref: str | None
    ) -> Document:
        return {
            "action": action.value,
            "via": via.value,
            "partnerId": link["partnerId"],
            "memberId": link["memberId"],
            "partnerMemberRef": link["partnerMemberRef"],
            "previousPartnerMemberRef": previous_ref,
            "actor": {"role": actor.role.value, "id": actor.subject},
            "at": self.clock.now(),
        }
