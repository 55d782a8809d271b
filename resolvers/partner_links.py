"""Partner link root fields: the member's one-time link code, the partner's redemption, admin links, history.

A link is proven by both sides: the member creates a code (their consent), the
partner redeems it with its API key and its own customer ref. An admin may link
directly; every link and unlink is in ``partnerLinkEvents``.
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from gateway.core.auth import Role, require_principal, require_role
from gateway.core.clock import as_utc
from gateway.core.errors import Forbidden
from gateway.core.permissions import Permission, require_permission, require_self_or
from gateway.domain.admin_audit import AuditAction
from gateway.domain.partner_links import LinkAction, LinkVia
from gateway.features.partner_links import PartnerLinks
from gateway.store.mongo import Document
from resolvers.context import Info
from resolvers.enums import graphql_enum
from resolvers.pagination import page_size
from resolvers.partner_types import PartnerAccount, PartnerLinkVia

PartnerLinkAction = graphql_enum(LinkAction, "PartnerLinkAction", "A change to a member's partner link.")


@strawberry.type(description="Shown once to the member: hand it to the partner, who redeems it before expiresAt.")
class PartnerLinkCode:
    code: str = strawberry.field(description="One-time, 10 characters (XXXXX-XXXXX); case and hyphens do not matter.")
    partner_id: strawberry.ID
    expires_at: datetime


@strawberry.type(description="One entry of the link history (the audit of who linked or unlinked, and how).")
class PartnerLinkEvent:
    action: PartnerLinkAction  # type: ignore[valid-type]
    via: PartnerLinkVia  # type: ignore[valid-type]
    member_id: strawberry.ID
    partner_id: strawberry.ID
    partner_member_ref: str
    previous_partner_member_ref: str | None = strawberry.field(description="The ref a new link replaced.")
    actor_role: str
    actor_id: str
    at: datetime

    @classmethod
    def of(cls, doc: Document) -> PartnerLinkEvent:
        return cls(
            action=LinkAction(doc["action"]),
            via=LinkVia(doc["via"]),
            member_id=strawberry.ID(doc["memberId"]),
            partner_id=strawberry.ID(doc["partnerId"]),
            partner_member_ref=doc["partnerMemberRef"],
            previous_partner_member_ref=doc.get("previousPartnerMemberRef"),
            actor_role=doc["actor"]["role"],
            actor_id=doc["actor"]["id"],
            at=as_utc(doc["at"]),
        )


def _links(info: Info) -> PartnerLinks:
    return info.context.services.partner_links


@strawberry.type
class PartnerLinkQuery:
    @strawberry.field(description="Admin: the link history, newest first, for a member and/or a partner.")
    async def partner_link_events(
        self,
        info: Info,
        member_id: strawberry.ID | None = None,
        partner_id: strawberry.ID | None = None,
        first: int = 50,
    ) -> list[PartnerLinkEvent]:
        require_permission(info.context.principal, Permission.PARTNERS_MANAGE, Permission.MEMBERS_READ)
        docs = await _links(info).history(
            member_id=str(member_id) if member_id is not None else None,
            partner_id=str(partner_id) if partner_id is not None else None,
            limit=page_size(first),
        )
        return [PartnerLinkEvent.of(doc) for doc in docs]


@strawberry.type
class PartnerLinkMutation:
    @strawberry.mutation(
        description="The member (their consent): a one-time code for this partner, valid for a few minutes; "
        "a new code replaces the outstanding one."
    )
    async def create_partner_link_code(
        self, info: Info, member_id: strawberry.ID, partner_id: strawberry.ID
    ) -> PartnerLinkCode:
        who = require_principal(info.context.principal)
        if who.role is not Role.MEMBER or who.subject != str(member_id):
            raise Forbidden("Only the member creates their own link code")
        code, doc = await _links(info).create_code(str(member_id), str(partner_id))
        return PartnerLinkCode(
            code=code, partner_id=strawberry.ID(doc["partnerId"]), expires_at=as_utc(doc["expiresAt"])
        )

    @strawberry.mutation(
        description="Partner (X-Api-Key): redeem a member's link code with its own customer ref for that member."
    )
    async def redeem_partner_link_code(self, info: Info, code: str, partner_member_ref: str) -> PartnerAccount:
        who = require_role(info.context.principal, Role.PARTNER)
        return PartnerAccount.of(await _links(info).redeem_code(who, code, partner_member_ref))

    @strawberry.mutation(description="Admin: link a member to a partner directly (recorded in partnerLinkEvents).")
    async def link_partner_account(
        self, info: Info, member_id: strawberry.ID, partner_id: strawberry.ID, partner_member_ref: str
    ) -> PartnerAccount:
        who = require_permission(info.context.principal, Permission.PARTNERS_MANAGE)
        audit = info.context.services.admin_audit.recorder(who, AuditAction.PARTNER_LINK, "member")
        linked = await _links(info).link(who, str(member_id), str(partner_id), partner_member_ref, audit=audit)
        return PartnerAccount.of(linked)

    @strawberry.mutation(description="The member or an admin withdraws the link; false when there was none.")
    async def unlink_partner_account(self, info: Info, member_id: strawberry.ID, partner_id: strawberry.ID) -> bool:
        who = require_self_or(info.context.principal, str(member_id), Permission.PARTNERS_MANAGE)
        # A member withdrawing their own consent is not a staff action; staff unlinks are audited.
        staff = who.role is not Role.MEMBER
        audit = info.context.services.admin_audit.recorder(who, AuditAction.PARTNER_UNLINK, "member") if staff else None
        return await _links(info).unlink(who, str(member_id), str(partner_id), audit=audit)
