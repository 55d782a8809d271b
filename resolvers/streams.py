"""Subscription root fields: thin wrappers over gateway.events.streams with per-subscription auth.

Authorization runs before the stream starts, so a refused subscription gets a
graphql-transport-ws ``error`` message with ``extensions.code`` (FORBIDDEN,
UNAUTHENTICATED) and the connection stays open for other subscriptions.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from gateway.core.permissions import Permission, require_permission, require_self_or
from gateway.events.hub import Closer
from gateway.events.streams import ACTIVITY, balance_entries, gift_topic, redemption_topic, tier_topic
from gateway.features.catalog import visible_to
from resolvers.broadcast import broadcast, views
from resolvers.context import Info
from resolvers.stream_types import BalanceEvent, GiftStockEvent, PointsActivity, RedemptionEvent, TierChangeEvent


def _closer(info: Info) -> Closer | None:
    return getattr(info.context, "close_soon", None)


@strawberry.type
class StreamSubscription:
    @strawberry.subscription(
        description="A member's balance changes (earn, spend, expire, refund, partner...). With `after`, first "
        "replays the entries after that position from the ledger, then continues live: no gaps, no duplicates."
    )
    async def balance_changed(
        self, info: Info, member_id: str, after: int | None = None
    ) -> AsyncGenerator[BalanceEvent, None]:
        require_self_or(info.context.principal, member_id, Permission.MEMBERS_READ)
        await info.context.load_member(member_id)
        entries = balance_entries(info.context.services, member_id, after, _closer(info))
        return views(entries, "balance", BalanceEvent.of)

    @strawberry.subscription(description="Every ledger entry, program-wide (admin and dashboard roles).")
    async def points_activity(self, info: Info) -> AsyncGenerator[PointsActivity, None]:
        require_permission(info.context.principal, Permission.ANALYTICS_READ)
        return broadcast(info, ACTIVITY, "activity", PointsActivity.of)

    @strawberry.subscription(description="A member's tier changes.")
    async def tier_changed(self, info: Info, member_id: str) -> AsyncGenerator[TierChangeEvent, None]:
        require_self_or(info.context.principal, member_id, Permission.MEMBERS_READ)
        return broadcast(info, tier_topic(member_id), "tier", TierChangeEvent.of)

    @strawberry.subscription(description="A member's redemption orders: placed, fulfilled, cancelled.")
    async def redemption_updated(self, info: Info, member_id: str) -> AsyncGenerator[RedemptionEvent, None]:
        require_self_or(info.context.principal, member_id, Permission.MEMBERS_READ)
        return broadcast(info, redemption_topic(member_id), "redemption", RedemptionEvent.of)

    @strawberry.subscription(
        description="A gift's stock changes (sold out, restocked). Public, like the catalog: a caller other "
        "than an admin hears nothing of an unlisted gift."
    )
    async def gift_stock_changed(self, info: Info, gift_id: str) -> AsyncGenerator[GiftStockEvent, None]:
        principal = info.context.principal
        visible = lambda change: visible_to(change.doc, principal)  # noqa: E731
        return broadcast(info, gift_topic(gift_id), "gift", GiftStockEvent.of, accept=visible)
