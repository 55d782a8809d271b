"""The one federated schema: each feature module contributes its root fields here."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.federation.schema import FederationAny
from strawberry.tools import merge_types
from strawberry.types import Info

from resolvers.admin_audit import AdminAuditQuery
from resolvers.analytics import AnalyticsMutation, AnalyticsQuery, AnalyticsSubscription
from resolvers.campaigns import CampaignMutation, CampaignQuery
from resolvers.catalog import CatalogMutation, CatalogQuery
from resolvers.catalog_types import Gift
from resolvers.coupons import CouponMutation, CouponQuery
from resolvers.errors import MaskUnexpectedErrors, log_unexpected
from resolvers.extension_runner import CachedHookRunner
from resolvers.extensions import (
    GuardedParserCache,
    GuardedValidationCache,
    MetricsExtension,
    OperationGuard,
    TokenLimit,
)
from resolvers.federation import RouterOnlyFederation, check_representations
from resolvers.grants import GrantRequestMutation, GrantRequestQuery
from resolvers.input_guard import InputTextGuard
from resolvers.member_accounts import MemberAccountMutation, MemberMergeMutation, MemberMergeQuery
from resolvers.member_search import MemberSearchMutation, MemberSearchQuery
from resolvers.member_types import Member
from resolvers.members import MemberMutation, MemberQuery
from resolvers.notifications import NotificationMutation, NotificationQuery
from resolvers.partner_links import PartnerLinkMutation, PartnerLinkQuery
from resolvers.partners import PartnerMutation, PartnerQuery
from resolvers.points import PointsMutation
from resolvers.program import ProgramQuery
from resolvers.program_admin import ProgramAdminMutation, ProgramAdminQuery
from resolvers.segment_grants import SegmentGrantMutation, SegmentGrantQuery
from resolvers.shared_events import SharedEventExecutor
from resolvers.streams import StreamSubscription

QUERIES: tuple[type, ...] = (
    ProgramQuery,
    MemberQuery,
    ProgramAdminQuery,
    CatalogQuery,
    CouponQuery,
    PartnerQuery,
    NotificationQuery,
    AnalyticsQuery,
    PartnerLinkQuery,
    CampaignQuery,
    SegmentGrantQuery,
    MemberSearchQuery,
    MemberMergeQuery,
    GrantRequestQuery,
    AdminAuditQuery,
)
MUTATIONS: tuple[type, ...] = (
    MemberMutation,
    PointsMutation,
    ProgramAdminMutation,
    CatalogMutation,
    CouponMutation,
    PartnerMutation,
    PartnerLinkMutation,
    NotificationMutation,
    AnalyticsMutation,
    GrantRequestMutation,
    MemberSearchMutation,
    MemberAccountMutation,
    MemberMergeMutation,
    CampaignMutation,
    SegmentGrantMutation,
)
SUBSCRIPTIONS: tuple[type, ...] = (StreamSubscription, AnalyticsSubscription)
ENTITIES: tuple[type, ...] = (Member, Gift)
# Storefronts send the same few documents over and over: parse and validate each once
# per process (bounded LRU, so unique documents from a client cannot grow memory).
DOCUMENT_CACHE_SIZE = 512


class GatewaySchema(strawberry.federation.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        log_unexpected(errors)

    def create_extensions_runner(self, execution_context: Any, extensions: list[Any]) -> CachedHookRunner:
        return CachedHookRunner(execution_context=execution_context, extensions=extensions)

    def entities_resolver(self, info: Info, representations: list[FederationAny]) -> list[FederationAny]:
        """Strawberry's, behind the checks of resolvers/federation.py (count, __typename, key types)."""
        entity_types = {t.__strawberry_definition__.name for t in ENTITIES}  # type: ignore[attr-defined]
        checked = check_representations(info, representations, {n: n for n in entity_types})
        valid: list[Any] = [r for r in checked if isinstance(r, dict)]
        resolved = iter(super().entities_resolver(info, valid))
        return [next(resolved) if isinstance(r, dict) else r for r in checked]


def build_schema() -> GatewaySchema:
    return GatewaySchema(
        query=merge_types("Query", QUERIES),
        mutation=merge_types("Mutation", MUTATIONS),
        subscription=merge_types("Subscription", SUBSCRIPTIONS) if SUBSCRIPTIONS else None,
        types=ENTITIES,
        # Order matters: the token limit applies to the cached parse too; OperationGuard refuses
        # over-limit documents before the (cached) validation, which then keeps that refusal.
        extensions=[
            TokenLimit,
            lambda: GuardedParserCache(maxsize=DOCUMENT_CACHE_SIZE),
            OperationGuard,
            lambda: GuardedValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
            MaskUnexpectedErrors,
            MetricsExtension,
            RouterOnlyFederation,
            InputTextGuard,
        ],
        execution_context_class=SharedEventExecutor,
    )


schema = build_schema()
