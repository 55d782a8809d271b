"""The one federated schema: each feature module contributes its root fields here."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.tools import merge_types

from resolvers.catalog import CatalogMutation, CatalogQuery
from resolvers.catalog_types import Gift
from resolvers.errors import MaskUnexpectedErrors, log_unexpected
from resolvers.extensions import MetricsExtension, OperationGuard, TokenLimit
from resolvers.member_types import Member
from resolvers.members import MemberMutation, MemberQuery
from resolvers.partners import PartnerMutation, PartnerQuery
from resolvers.points import PointsMutation
from resolvers.program import ProgramQuery
from resolvers.program_admin import ProgramAdminMutation, ProgramAdminQuery
from resolvers.shared_events import SharedEventExecutor
from resolvers.streams import StreamSubscription

QUERIES: tuple[type, ...] = (ProgramQuery, MemberQuery, ProgramAdminQuery, CatalogQuery, PartnerQuery)
MUTATIONS: tuple[type, ...] = (MemberMutation, PointsMutation, ProgramAdminMutation, CatalogMutation, PartnerMutation)
SUBSCRIPTIONS: tuple[type, ...] = (StreamSubscription,)
ENTITIES: tuple[type, ...] = (Member, Gift)


class GatewaySchema(strawberry.federation.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        log_unexpected(errors)


def build_schema() -> GatewaySchema:
    return GatewaySchema(
        query=merge_types("Query", QUERIES),
        mutation=merge_types("Mutation", MUTATIONS),
        subscription=merge_types("Subscription", SUBSCRIPTIONS) if SUBSCRIPTIONS else None,
        types=ENTITIES,
        extensions=[TokenLimit, OperationGuard, MaskUnexpectedErrors, MetricsExtension],
        execution_context_class=SharedEventExecutor,
    )


schema = build_schema()
