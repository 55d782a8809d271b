"""Abuse limits a public GraphQL endpoint needs: operation limits, persisted queries, rate limits.

``HardeningSettings`` is mixed into ``gateway.core.settings.Settings``, so every value is an
``LOYALTY_*`` environment variable like the others; the frozen views below are what the web
layer and the schema extensions read (hashable, so derived rule sets can be cached per value).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field, field_validator

from gateway.core.auth import Role

CALLER_KINDS = ("anonymous", *(role.value for role in Role))  # every role has its own limit
STAFF_KINDS = frozenset({Role.SUPPORT.value, Role.FINANCE.value, Role.WAREHOUSE.value, Role.MARKETING.value})


def _kinds(value: str) -> frozenset[str]:
    kinds = frozenset(part.strip().lower() for part in value.split(",") if part.strip())
    unknown = kinds - set(CALLER_KINDS)
    if unknown:
        raise ValueError(f"unknown caller kinds {sorted(unknown)}; use {', '.join(CALLER_KINDS)}")
    return kinds


@dataclass(frozen=True)
class OperationLimits:
    max_depth: int = 10
    max_aliases: int = 30
    max_root_fields: int = 15
    max_tokens: int = 2000
    max_directives: int = 20
    max_cost: int = 5000
    max_page_size: int = 100
    default_list_size: int = 10
    max_body_bytes: int = 256 * 1024
    max_variables_bytes: int = 64 * 1024
    introspection: bool = True


@dataclass(frozen=True)
class RateLimits:
    """Requests per window per principal; ``failed_auth`` counts bad credentials per client address."""

    window_seconds: int = 60
    anonymous: int = 300
    member: int = 600
    partner: int = 3000
    dashboard: int = 1200
    admin: int = 3000
    payments: int = 3000
    staff: int = 3000  # support, finance, warehouse, marketing: one limit each per person
    failed_auth: int = 20
    subscriptions_per_connection: int = 20
    subscriptions_per_member: int = 10

    def for_kind(self, kind: str) -> int:
        if kind in STAFF_KINDS:
            return self.staff
        return int(getattr(self, kind))


class HardeningSettings(BaseModel):
    """Limits, persisted queries, rate limits, introspection and CORS (see docs/hardening.md)."""

    max_query_depth: int = Field(default=10, ge=1, description="Deepest nesting of fields in an operation.")
    max_aliases: int = Field(default=30, ge=0, description="Aliases in one document.")
    max_root_fields: int = Field(default=15, ge=1, description="Top-level fields in one operation.")
    max_tokens: int = Field(default=2000, ge=10, description="Lexical tokens in one document.")
    max_directives: int = Field(default=20, ge=0, description="Directive uses in one document.")
    max_query_cost: int = Field(
        default=5000, ge=1, description="Objects an operation may ask for; lists multiply by their page size."
    )
    max_page_size: int = Field(default=100, ge=1, le=100, description="Largest `first` a connection accepts.")
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, description="Largest HTTP body or WebSocket message.")
    max_variables_bytes: int = Field(default=64 * 1024, ge=256, description="Largest `variables` object (JSON).")
    introspection: bool | None = Field(
        default=None, description="Schema introspection and 'Did you mean' hints; unset: on only in development."
    )
    persisted_queries_only: str | None = Field(
        default=None,
        description="Caller kinds that may run only registered operations (comma list of anonymous, member, "
        "partner, dashboard, admin); unset: 'partner' in production, nobody in development.",
    )
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    rate_limit_anonymous: int = Field(default=300, ge=1, description="Requests per window per client address.")
    rate_limit_member: int = Field(default=600, ge=1, description="Requests per window per member.")
    rate_limit_partner: int = Field(default=3000, ge=1, description="Requests per window per partner.")
    rate_limit_dashboard: int = Field(default=1200, ge=1)
    rate_limit_admin: int = Field(default=3000, ge=1)
    rate_limit_payments: int = Field(default=3000, ge=1)
    rate_limit_staff: int = Field(
        default=3000, ge=1, description="Per person, for support/finance/warehouse/marketing."
    )
    rate_limit_failed_auth: int = Field(default=20, ge=1, description="Bad credentials per window per address.")
    max_subscriptions_per_connection: int = Field(default=20, ge=1)
    max_subscriptions_per_member: int = Field(default=10, ge=1)
    cors_allow_origins: str = Field(default="", description="Comma list of origins allowed by CORS; empty: CORS off.")

    @field_validator("persisted_queries_only")
    @classmethod
    def _known_kinds(cls, value: str | None) -> str | None:
        if value is not None:
            _kinds(value)
        return value

    def _production(self) -> bool:
        return str(getattr(self, "environment", "development")) == "production"

    @property
    def operation_limits(self) -> OperationLimits:
        return OperationLimits(
            max_depth=self.max_query_depth,
            max_aliases=self.max_aliases,
            max_root_fields=self.max_root_fields,
            max_tokens=self.max_tokens,
            max_directives=self.max_directives,
            max_cost=self.max_query_cost,
            max_page_size=self.max_page_size,
            max_body_bytes=self.max_body_bytes,
            max_variables_bytes=self.max_variables_bytes,
            introspection=self.introspection if self.introspection is not None else not self._production(),
        )

    @property
    def rate_limits(self) -> RateLimits:
        return RateLimits(
            window_seconds=self.rate_limit_window_seconds,
            anonymous=self.rate_limit_anonymous,
            member=self.rate_limit_member,
            partner=self.rate_limit_partner,
            dashboard=self.rate_limit_dashboard,
            admin=self.rate_limit_admin,
            payments=self.rate_limit_payments,
            staff=self.rate_limit_staff,
            failed_auth=self.rate_limit_failed_auth,
            subscriptions_per_connection=self.max_subscriptions_per_connection,
            subscriptions_per_member=self.max_subscriptions_per_member,
        )

    @property
    def persisted_only_kinds(self) -> frozenset[str]:
        """Caller kinds that may run registered (allow-listed) operations only."""
        if self.persisted_queries_only is None:
            return frozenset({"partner"}) if self._production() else frozenset()
        return _kinds(self.persisted_queries_only)

    @property
    def cors_origins(self) -> list[str]:
        return [origin.strip() for origin in self.cors_allow_origins.split(",") if origin.strip()]
