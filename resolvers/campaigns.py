"""Staff GraphQL over campaigns (campaigns:manage): time-boxed earning boosts with a budget."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gateway.core.clock import as_utc
from gateway.core.permissions import Permission, require_permission
from gateway.domain import campaigns as rules
from gateway.features.campaigns import status_of
from gateway.store.mongo import Document
from resolvers.context import Info
from resolvers.enums import graphql_enum
from resolvers.pagination import Connection, connection, decode_cursor, page_size

CampaignStatus = graphql_enum(
    rules.CampaignStatus,
    "CampaignStatus",
    "SCHEDULED (not started), ACTIVE, EXHAUSTED (budget spent), ENDED, CANCELLED.",
)


@strawberry.type(
    description="Lines in these categories or with these SKUs earn multiplierPercent of the regular "
    "rate (200 = double points); no categories and no SKUs: every line."
)
class CampaignBoost:
    multiplier_percent: int
    categories: list[str]
    skus: list[str]


@strawberry.type(description="What a campaign gave, from the ledger.")
class CampaignStats:
    points_given: int = strawberry.field(description="Bonus points credited by the campaign.")
    points_taken_back: int = strawberry.field(description="Bonus points refunds took back.")
    members: int = strawberry.field(description="Members who earned a bonus.")
    orders: int = strawberry.field(description="Orders that earned a bonus.")


@strawberry.type(description="A time-boxed earning campaign (docs/campaigns.md).")
class Campaign:
    id: strawberry.ID
    name: str
    description: str
    starts_at: datetime
    ends_at: datetime
    boosts: list[CampaignBoost]
    budget_points: int | None = strawberry.field(description="None: no budget.")
    member_cap_points: int | None = strawberry.field(description="Most bonus points one member may get; None: no cap.")
    spent_points: int = strawberry.field(description="Bonus points given so far (refunds do not give budget back).")
    remaining_points: int | None
    status: CampaignStatus  # type: ignore[valid-type]
    exhausted_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    version: int
    created_at: datetime
    created_by: str

    @strawberry.field(description="Points given and taken back, members and orders reached (read from the ledger).")
    async def stats(self, info: Info) -> CampaignStats:
        row = await info.context.services.campaigns.stats(str(self.id))
        return CampaignStats(
            points_given=row["given"], points_taken_back=row["takenBack"], members=row["members"], orders=row["orders"]
        )

    @classmethod
    def of(cls, doc: Document, now: datetime) -> Campaign:
        budget = doc.get("budgetPoints")
        spent = doc.get("spentPoints", 0)
        return cls(
            id=strawberry.ID(str(doc["_id"])),
            name=doc["name"],
            description=doc.get("description", ""),
            starts_at=as_utc(doc["startsAt"]),
            ends_at=as_utc(doc["endsAt"]),
            boosts=[
                CampaignBoost(
                    multiplier_percent=b["multiplierPercent"],
                    categories=b.get("categories", []),
                    skus=b.get("skus", []),
                )
                for b in doc["boosts"]
            ],
            budget_points=budget,
            member_cap_points=doc.get("memberCapPoints"),
            spent_points=spent,
            remaining_points=max(budget - spent, 0) if budget is not None else None,
            status=CampaignStatus(status_of(doc, now).value),
            exhausted_at=doc.get("exhaustedAt"),
            cancelled_at=doc.get("cancelledAt"),
            cancel_reason=doc.get("cancelReason"),
            version=doc["version"],
            created_at=doc["createdAt"],
            created_by=doc["createdBy"],
        )


@strawberry.input
class CampaignBoostInput:
    multiplier_percent: int = strawberry.field(description="200 = double points on matching lines; 101 to 1000.")
    categories: list[str] = strawberry.field(default_factory=list)
    skus: list[str] = strawberry.field(default_factory=list)


@strawberry.input
class CampaignInput:
    name: str
    description: str = ""
    starts_at: datetime
    ends_at: datetime
    boosts: list[CampaignBoostInput]
    budget_points: int | None = strawberry.field(default=None, description="The campaign stops once it gave this many.")
    member_cap_points: int | None = None


def _spec(data: CampaignInput) -> rules.CampaignSpec:
    return rules.CampaignSpec(
        name=data.name,
        description=data.description,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        budget_points=data.budget_points,
        member_cap_points=data.member_cap_points,
        boosts=tuple(rules.BoostSpec(b.multiplier_percent, tuple(b.categories), tuple(b.skus)) for b in data.boosts),
    )


@strawberry.type
class CampaignQuery:
    @strawberry.field(description="One campaign (campaigns:manage).")
    async def campaign(self, info: Info, id: strawberry.ID) -> Campaign:
        require_permission(info.context.principal, Permission.CAMPAIGNS_MANAGE)
        doc = await info.context.services.campaigns.get(str(id))
        return Campaign.of(doc, info.context.services.clock.now())

    @strawberry.field(description="Campaigns, newest first (campaigns:manage).")
    async def campaigns(self, info: Info, first: int = 20, after: str | None = None) -> Connection[Campaign]:
        require_permission(info.context.principal, Permission.CAMPAIGNS_MANAGE)
        size = page_size(first)
        docs = await info.context.services.campaigns.page(after=decode_cursor(after), size=size + 1)
        now = info.context.services.clock.now()
        return connection([Campaign.of(d, now) for d in docs], size, lambda c: str(c.id))


@strawberry.type
class CampaignMutation:
    @strawberry.mutation(description="Create a campaign (campaigns:manage; audited).")
    async def create_campaign(self, info: Info, input: CampaignInput) -> Campaign:
        who = require_permission(info.context.principal, Permission.CAMPAIGNS_MANAGE)
        doc = await info.context.services.campaigns.create(who, _spec(input))
        return Campaign.of(doc, info.context.services.clock.now())

    @strawberry.mutation(
        description="Change a campaign (campaigns:manage; audited). Once started, its start, boosts and per-member "
        "cap stay; the end may move (not into the past) and the budget may not drop below what it gave."
    )
    async def update_campaign(
        self, info: Info, id: strawberry.ID, input: CampaignInput, expected_version: int | None = None
    ) -> Campaign:
        who = require_permission(info.context.principal, Permission.CAMPAIGNS_MANAGE)
        doc = await info.context.services.campaigns.update(
            who, str(id), _spec(input), expected_version=expected_version
        )
        return Campaign.of(doc, info.context.services.clock.now())

    @strawberry.mutation(description="Stop a campaign now (campaigns:manage; audited). What it gave stays.")
    async def cancel_campaign(self, info: Info, id: strawberry.ID, reason: str) -> Campaign:
        who = require_permission(info.context.principal, Permission.CAMPAIGNS_MANAGE)
        doc = await info.context.services.campaigns.cancel(who, str(id), reason)
        return Campaign.of(doc, info.context.services.clock.now())
