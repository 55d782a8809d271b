"""The Member entity and its balances."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from gateway.core.clock import as_utc
from gateway.core.errors import BadInput
from gateway.core.permissions import Permission, allows
from gateway.domain.member_status import MemberStatus, status_of
from gateway.domain.tiers import next_tier
from gateway.features.members import paid_term
from gateway.store.ledger_history import entries_page
from gateway.store.mongo import Document
from resolvers.analytics_types import RfmSegmentName
from resolvers.balance_types import PointBalances
from resolvers.catalog_types import Redemption
from resolvers.context import Info
from resolvers.enums import graphql_enum
from resolvers.ledger_types import LedgerEntry, LedgerFilterInput
from resolvers.pagination import Connection, connection, decode_cursor, page_size
from resolvers.partner_types import PartnerAccount
from resolvers.points_types import BenefitStatus, ExpiringPoints, PaidMembership, Purchase, TierProgress
from resolvers.program_types import Benefit, NextTier, Tier


@strawberry.type(description="A member's RFM scores (1-5, higher = more recent / frequent / spent) and segment.")
class MemberRfm:
    segment: RfmSegmentName  # type: ignore[valid-type]
    recency: int
    frequency: int
    monetary: int
    as_of: datetime = strawberry.field(description="When the segment snapshot was taken.")

    @classmethod
    def of(cls, doc: Document) -> MemberRfm:
        return cls(
            segment=RfmSegmentName(doc["segment"]),
            recency=doc["r"],
            frequency=doc["f"],
            monetary=doc["m"],
            as_of=as_utc(doc["asOf"]),
        )


MemberStatusName = graphql_enum(
    MemberStatus, "MemberStatus", "ACTIVE; FROZEN by the operator (no earning, no spending); CLOSED (data erased)."
)


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
        from gateway.core.permissions import Permission, require_self_or

        require_self_or(info.context.principal, str(id), Permission.MEMBERS_READ)
        return cls.of(await info.context.load_member(str(id)))

    @strawberry.field(description="Holds a running paid membership (付费会员) now: purchase points multiplied.")
    async def paid_member(self, info: Info) -> bool:
        term = paid_term(self.doc, (await info.context.program()).timezone)
        return term is not None and term.active_at(info.context.services.clock.now())

    @strawberry.field(description="The paid-membership term (current or last); null if never a paid member.")
    async def paid_membership(self, info: Info) -> PaidMembership | None:
        term = paid_term(self.doc, (await info.context.program()).timezone)
        return None if term is None else PaidMembership.of(term, info.context.services.clock.now())

    @strawberry.field(
        description="Staff (members:read): the member's RFM segment as of the last segment snapshot; null when "
        "they bought nothing in its window, and for every other caller."
    )
    def rfm(self, info: Info) -> MemberRfm | None:
        if not allows(info.context.principal, Permission.MEMBERS_READ) or not self.doc.get("rfm"):
            return None
        return MemberRfm.of(self.doc["rfm"])

    @strawberry.field(description="ACTIVE, FROZEN (neither earns nor spends) or CLOSED (personal data erased).")
    def status(self) -> MemberStatusName:  # type: ignore[valid-type]
        return MemberStatusName(str(status_of(self.doc)))

    @strawberry.field(description="MERGED accounts: the account they were merged into (use that one).")
    def merged_into(self) -> str | None:
        merged: str | None = self.doc.get("mergedInto")
        return merged

    @strawberry.field(description="Staff (members:read): why the account is frozen; null otherwise.")
    def freeze_reason(self, info: Info) -> str | None:
        if not allows(info.context.principal, Permission.MEMBERS_READ):
            return None
        reason: str | None = self.doc.get("freezeReason")
        return reason

    @strawberry.field(
        description="The member's ledger, newest first; `filter` narrows it by kind, source and time "
        "(customer service: docs/members.md)."
    )
    async def ledger(
        self, info: Info, first: int = 20, after: str | None = None, filter: LedgerFilterInput | None = None
    ) -> Connection[LedgerEntry]:
        size = page_size(first)
        position = decode_cursor(after)
        if position is not None and not position.isdigit():
            raise BadInput("after is not a valid cursor", field="after")
        docs = await entries_page(
            info.context.services.db,
            self.doc["_id"],
            before_seq=int(position) if position is not None else None,
            limit=size + 1,
            ledger_filter=filter.to_domain() if filter is not None else None,
        )
        entries = [LedgerEntry.of(doc) for doc in docs]
        return connection(entries, size, lambda entry: str(entry.position))

    @strawberry.field
    async def tier(self, info: Info) -> Tier:
        program = await info.context.program()
        return Tier.of(program.tier(self.doc["tier"]))

    async def _qualifying_value(self, info: Info) -> int:
        """Lifetime spend or growth, or only what falls inside the program's rolling validity window
        (batched: every member of the answer in one aggregate)."""
        from dataloaders.members import windowed_value_loader
        from gateway.domain.tiers import lifetime_value

        context = info.context
        program = await context.program()
        if program.tier_policy.validity_days is None:
            doc = self.doc
            return lifetime_value(program, lifetime_spend=doc.get("lifetimeSpend", 0), growth=doc.get("growth", 0))
        if "tier.windowed" not in context.loaders:
            context.loaders["tier.windowed"] = windowed_value_loader(context)
        return await context.loaders["tier.windowed"].load(self.doc["_id"])

    @strawberry.field(
        description="The tier above the one held, what is left to reach it (inside the validity window, "
        "if the program has one) and what it adds; null at the top."
    )
    async def next_tier(self, info: Info) -> NextTier | None:
        program = await info.context.program()
        value = await self._qualifying_value(info)
        upcoming = next_tier(value, program.tiers, held=self.doc["tier"])
        if upcoming is None:
            return None
        return NextTier(
            tier=Tier.of(upcoming.tier),
            remaining=upcoming.remaining,
            benefits_gained=[Benefit.of(b) for b in upcoming.benefits_gained],
        )

    @strawberry.field(description="The member's gift redemption orders, newest first.")
    async def redemptions(self, info: Info, first: int = 20, after: str | None = None) -> Connection[Redemption]:

        size = page_size(first)
        docs = await info.context.services.redemptions.page_for_member(
            self.doc["_id"], first=size, after=decode_cursor(after)
        )
        return connection([Redemption.of(d) for d in docs], size, lambda order: str(order.id))

    @strawberry.field(description="Tier benefits with this period's quota usage (free shipping 1/month...).")
    async def benefits(self, info: Info) -> list[BenefitStatus]:

        program = await info.context.program()
        usages = await info.context.services.benefits.of_member(self.doc, program)
        return [BenefitStatus.of(u) for u in usages]

    @strawberry.field(description="Points expiring within the next `days` days, grouped by expiry instant.")
    async def expiring_points(self, info: Info, days: int = 30) -> ExpiringPoints:
        from gateway.features.expiry import expiring_points

        if not 1 <= days <= 3660:
            raise BadInput("days must be between 1 and 3660", field="days")
        services = info.context.services
        lots = await expiring_points(services.db, self.doc["_id"], services.clock.now(), days)
        return ExpiringPoints.of(lots, days)

    @strawberry.field(description="What the tier is judged on: the basis, its value and the validity window.")
    async def tier_progress(self, info: Info) -> TierProgress:
        program = await info.context.program()
        return TierProgress(
            basis=program.tier_policy.basis.value,
            value=await self._qualifying_value(info),
            window_days=program.tier_policy.validity_days,
        )

    @strawberry.field(description="The member's recorded orders, newest first.")
    async def purchases(self, info: Info, first: int = 20, after: str | None = None) -> Connection[Purchase]:
        from gateway.store.purchases import purchases_page

        size = page_size(first)
        db = info.context.services.db
        docs = await purchases_page(db, self.doc["_id"], before=decode_cursor(after), size=size + 1)
        items = [Purchase.of(doc) for doc in docs]
        return connection(items, size, lambda item: item.position)

    @strawberry.field(description="Partner accounts the member linked: the partners that may act for them.")
    async def partner_accounts(self, info: Info) -> list[PartnerAccount]:
        links = await info.context.services.partner_links.links_for_member(self.doc["_id"])
        return [PartnerAccount.of(doc) for doc in links]
