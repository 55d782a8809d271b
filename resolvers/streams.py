"""Subscription root fields: thin wrappers over gateway.events.streams with per-subscription auth.

Authorization runs before the stream starts, so a refused subscription gets a
graphql-transport-ws ``error`` message with ``extensions.code`` (FORBIDDEN,
UNAUTHENTICATED) and the connection stays open for other subscriptions.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

import strawberry

from gateway.core.permissions import Permission, require_permission, require_self_or
from gateway.events.hub import Closer
from gateway.events.streams import ACTIVITY, balance_entries, gift_topic, live_changes, redemption_topic, tier_topic
from gateway.features.catalog import visible_to
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
        return _views(entries, "balance", BalanceEvent.of)

    @strawberry.subscription(description="Every ledger entry, program-wide (admin and dashboard roles).")
    async def points_activity(self, info: Info) -> AsyncGenerator[PointsActivity, None]:
        require_permission(info.context.principal, Permission.ANALYTICS_READ)
        changes = live_changes(info.context.services, ACTIVITY, _closer(info))
        return _views(changes, "activity", PointsActivity.of)

    @strawberry.subscription(description="A member's tier changes.")
    async def tier_changed(self, info: Info, member_id: str) -> AsyncGenerator[TierChangeEvent, None]:
        require_self_or(info.context.principal, member_id, Permission.MEMBERS_READ)
        changes = live_changes(info.context.services, tier_topic(member_id), _closer(info))
        return _views(changes, "tier", TierChangeEvent.of)

    @strawberry.subscription(description="A member's redemption orders: placed, fulfilled, cancelled.")
    async def redemption_updated(self, info: Info, member_id: str) -> AsyncGenerator[RedemptionEvent, None]:
        require_self_or(info.context.principal, member_id, Permission.MEMBERS_READ)
        changes = live_changes(info.context.services, redemption_topic(member_id), _closer(info))
        return _views(changes, "redemption", RedemptionEvent.of)

    @strawberry.subscription(
        description="A gift's stock changes (sold out, restocked). Public, like the catalog: a caller other "
        "than an admin hears nothing of an unlisted gift."
    )
    async def gift_stock_changed(self, info: Info, gift_id: str) -> AsyncGenerator[GiftStockEvent, None]:
        services = info.context.services
        principal = info.context.principal
        changes = live_changes(services, gift_topic(gift_id), _closer(info))
        visible = (change async for change in changes if visible_to(change.doc, principal))
        return _views(visible, "gift", GiftStockEvent.of)


async def _views(source: AsyncIterator, name: str, convert):  # type: ignore[no-untyped-def]
    """Convert each change once per process (cached on the change), not per subscriber."""
    async for change in source:
        yield change.view(name, convert)
