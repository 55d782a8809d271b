"""The Member entity and its balances."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from gateway.clock import as_utc
from gateway.db import Document
from gateway.domain.tiers import next_tier, qualifying_value
from gateway.errors import BadInput
from gateway.partners import partners_service
from resolvers.balance_types import PointBalances
from resolvers.context import Info
from resolvers.ledger_types import LedgerEntry
from resolvers.pagination import Connection, connection, decode_cursor, page_size
from resolvers.partner_types import PartnerAccount
from resolvers.program_types import Benefit, NextTier, Tier


@strawberry.federation.type(keys=["id"], description="A member of the loyalty program.")
class Member:
    id: strawberry.ID
    display_name: str
    email: str | None
    phone: str | None
    birthday: date | None
    registered_at: datetime
    referrer_id: str | None
    lifetime_spend: int = strawberry.field(description="Lifetime spend in fen (¥1 = 100).")
    growth_value: int = strawberry.field(description="Engagement measure (成长值); never spent.")
    points: PointBalances
    doc: strawberry.Private[Document]

    @classmethod
    def of(cls, doc: Document) -> Member:
        return cls(
            id=strawberry.ID(doc["_id"]),
            display_name=doc["displayName"],
            email=doc.get("email"),
            phone=doc.get("phone"),
            birthday=date.fromisoformat(doc["birthday"]) if doc.get("birthday") else None,
            registered_at=as_utc(doc["registeredAt"]),
            referrer_id=doc.get("referrerId"),
            lifetime_spend=doc["lifetimeSpend"],
            growth_value=doc["growth"],
            points=PointBalances.of(doc["balances"]),
            doc=doc,
        )

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> Member:
        from gateway.auth import require_member_access

        require_member_access(info.context.principal, str(id))
        return cls.of(await info.context.load_member(str(id)))

    @strawberry.field(description="The member's ledger, newest first.")
    async def ledger(self, info: Info, first: int = 20, after: str | None = None) -> Connection[LedgerEntry]:
        size = page_size(first)
        query: Document = {"memberId": self.doc["_id"]}
        position = decode_cursor(after)
        if position is not None:
            if not position.isdigit():
                raise BadInput("after is not a valid cursor", field="after")
            query["seq"] = {"$lt": int(position)}
        cursor = info.context.services.db.ledger.find(query).sort("seq", -1).limit(size + 1)
        entries = [LedgerEntry.of(doc) async for doc in cursor]
        return connection(entries, size, lambda entry: str(entry.position))

    @strawberry.field
    async def tier(self, info: Info) -> Tier:
        program = await info.context.program()
        return Tier.of(program.tier(self.doc["tier"]))

    @strawberry.field(description="What is left to reach the next tier; null at the top.")
    async def next_tier(self, info: Info) -> NextTier | None:
        program = await info.context.program()
        value = qualifying_value(program, lifetime_spend=self.doc["lifetimeSpend"], growth=self.doc["growth"])
        upcoming = next_tier(value, program.tiers)
        if upcoming is None:
            return None
        return NextTier(
            tier=Tier.of(upcoming.tier),
            remaining=upcoming.remaining,
            benefits_gained=[Benefit.of(b) for b in upcoming.benefits_gained],
        )

    @strawberry.field(description="Partner accounts the member linked: the partners that may act for them.")
    async def partner_accounts(self, info: Info) -> list[PartnerAccount]:
        links = await partners_service(info.context.services).links_for_member(self.doc["_id"])
        return [PartnerAccount.of(doc) for doc in links]
