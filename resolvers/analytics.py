"""Operator analytics root fields (roles admin and dashboard; members and partners get FORBIDDEN)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from datetime import date
from typing import Annotated, Any

import strawberry

from gateway.core.permissions import Permission, require_permission
from gateway.domain.analytics import Flows, entry_flows
from gateway.events.hub import Change
from gateway.events.streams import ACTIVITY, live_changes
from gateway.events.throttle import batches
from gateway.features.analytics import span_of
from gateway.features.program_admin import ConfigAudit, update_program
from resolvers.analytics_types import (
    AnalyticsSettings,
    AnalyticsSettingsInput,
    AnalyticsUpdate,
    MemberAnalytics,
    PartnerTotals,
    PointsAnalytics,
    TopGift,
)
from resolvers.context import Info

From = Annotated[date, strawberry.argument(name="from", description="First local date (program time zone).")]
UPDATE_INTERVAL_SECONDS = 1.0


@strawberry.type
class AnalyticsQuery:
    @strawberry.field(
        description="Points issued/redeemed/expired/reversed per month (program time zone), liability, health, "
        "cost and breakage for the local dates from..to (inclusive). Admin and dashboard roles."
    )
    async def points_analytics(self, info: Info, from_: From, to: date) -> PointsAnalytics:
        require_permission(info.context.principal, Permission.ANALYTICS_READ)
        program = await info.context.program()
        span = span_of(from_, to, program)
        return PointsAnalytics.of(await info.context.services.analytics.points(span, program), program, span)

    @strawberry.field(description="Members by tier (now), new and active members per month, RFM segments.")
    async def member_analytics(self, info: Info, from_: From, to: date) -> MemberAnalytics:
        require_permission(info.context.principal, Permission.ANALYTICS_READ)
        program = await info.context.program()
        span = span_of(from_, to, program)
        return MemberAnalytics(span=span, program=program)

    @strawberry.field(description="Gifts by redemptions in the range (cancelled orders excluded), most first.")
    async def top_gifts(self, info: Info, from_: From, to: date, first: int = 10) -> list[TopGift]:
        require_permission(info.context.principal, Permission.ANALYTICS_READ)
        program = await info.context.program()
        span = span_of(from_, to, program)
        return [TopGift.of(g) for g in await info.context.services.analytics.top_gifts(span, first)]

    @strawberry.field(description="Per partner: accrued, burned, converted, net points and settlement money.")
    async def partner_analytics(self, info: Info, from_: From, to: date) -> list[PartnerTotals]:
        require_permission(info.context.principal, Permission.ANALYTICS_READ)
        program = await info.context.program()
        span = span_of(from_, to, program)
        return [PartnerTotals.of(p) for p in await info.context.services.analytics.partners(span)]

    @strawberry.field(description="Dashboard settings: time zone, cost per point, health thresholds.")
    async def analytics_settings(self, info: Info) -> AnalyticsSettings:
        require_permission(info.context.principal, Permission.ANALYTICS_READ)
        return AnalyticsSettings.of(await info.context.program(), info.context.services.clock.now())


@strawberry.type
class AnalyticsMutation:
    @strawberry.mutation(description="Change the dashboard settings (admins only); invalid → BAD_USER_INPUT.")
    async def update_analytics_settings(self, info: Info, input: AnalyticsSettingsInput) -> AnalyticsSettings:
        who = require_permission(info.context.principal, Permission.ANALYTICS_MANAGE)
        changes: dict[str, Any] = {}
        for name in ("cost_per_point_milli_fen", "advice_low_percent", "advice_high_percent"):
            value = getattr(input, name)
            if value is strawberry.UNSET:
                continue
            if value is None and name != "cost_per_point_milli_fen":
                continue
            changes[name] = value
        audit = ConfigAudit(info.context.services.admin_audit, who, "analytics")
        program, _version = await update_program(info.context.services.db, {"analytics": changes}, audit=audit)
        info.context.remember_program(program)
        return AnalyticsSettings.of(program, info.context.services.clock.now())


@strawberry.type
class AnalyticsSubscription:
    @strawberry.subscription(
        description="The points flows committed since the last update, at most one update a second: a dashboard "
        "re-reads its KPIs on each. Fed by the change stream, so changes made through any replica arrive."
    )
    async def analytics_updated(self, info: Info) -> AsyncGenerator[AnalyticsUpdate, None]:
        require_permission(info.context.principal, Permission.ANALYTICS_READ)
        changes = live_changes(info.context.services, ACTIVITY, getattr(info.context, "close_soon", None))
        return _updates(batches(changes, UPDATE_INTERVAL_SECONDS), info)


async def _updates(source: AsyncIterator[list[Change]], info: Info) -> AsyncGenerator[AnalyticsUpdate, None]:
    clock = info.context.services.clock
    async for batch in source:
        total = sum((entry_flows(c.doc["kind"], c.doc.get("delta", {})) for c in batch), Flows())
        yield AnalyticsUpdate(
            at=clock.now(),
            entries=len(batch),
            issued=total.issued,
            redeemed=total.redeemed,
            expired=total.expired,
            reversed=total.reversed,
        )
