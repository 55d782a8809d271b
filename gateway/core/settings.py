"""Runtime settings, read from ``LOYALTY_*`` environment variables."""

from __future__ import annotations

import secrets
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.core.hardening import HardeningSettings


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message is one line for the operator."""


class Settings(BaseSettings, HardeningSettings):
    model_config = SettingsConfigDict(env_prefix="LOYALTY_", extra="ignore")

    mongodb_uri: str | None = Field(default=None, description="MongoDB URI; unset starts the embedded mongod.")
    database: str = Field(default="loyalty", min_length=1)
    kafka_bootstrap_servers: str | None = None
    kafka_idempotent_producer: bool = Field(default=True, description="Idempotent Kafka producer; tansu needs false.")
    kafka_partner_topic: str = "loyalty.partner-events"
    kafka_dead_letter_topic: str = "loyalty.partner-events.dlq"
    kafka_balance_topic: str = "loyalty.balance-events"
    jwt_secret: SecretStr | None = None
    coupon_code_key: SecretStr | None = Field(
        default=None, description="Seals and hashes coupon codes at rest; required in production, never change it."
    )
    coupon_expiry_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often codes past their expiry leave their pools (and the stock)."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path(".loyalty")
    environment: Environment = Environment.DEVELOPMENT
    scheduler_interval_seconds: float = Field(default=60.0, gt=0, description="How often the expiry job runs.")
    tier_reevaluation_interval_seconds: float = Field(
        default=86_400.0, gt=0, description="How often tiers are re-evaluated over the validity window (daily)."
    )
    member_segment_interval_seconds: float = Field(
        default=86_400.0, gt=0, description="How often the members' RFM segment snapshot is taken (daily)."
    )
    member_segment_window_days: int = Field(
        default=365, ge=1, le=3660, description="The days of purchases a member segment snapshot scores."
    )
    job_lease_seconds: float = Field(
        default=30.0, gt=0, description="Lease of a scheduled job: one replica runs it; renewed at a third."
    )
    job_batch_size: int = Field(default=500, ge=1, description="Member ids a scheduled job reads per batch.")
    job_concurrency: int = Field(default=4, ge=1, description="Members a scheduled job settles at once.")
    segment_grant_poll_seconds: float = Field(
        default=5.0, gt=0, description="How often a gateway looks for segment grant jobs (one replica runs them)."
    )
    segment_grant_approval_threshold_points: int = Field(
        default=100_000,
        ge=0,
        description="A segment grant moving more points than this in all waits for a second person's approval.",
    )
    subscriber_queue_size: int = Field(
        default=256,
        ge=1,
        description="Events buffered per subscription; a subscriber that falls further behind is disconnected (4008).",
    )
    mongodb_timeout_ms: int = Field(
        default=2000,
        ge=100,
        description="Server selection timeout: how long a request waits for an unreachable MongoDB "
        "before it fails with SERVICE_UNAVAILABLE.",
    )
    embedded_mongod_max_restarts: int = Field(
        default=5, ge=0, description="Restarts of a dying embedded mongod before /healthz fails."
    )
    embedded_mongod_restart_backoff_seconds: float = Field(
        default=1.0, gt=0, description="First pause before restarting the embedded mongod; doubles each time."
    )
    router_secret: SecretStr | None = Field(
        default=None, description="Shared secret the federation router sends in X-Router-Secret."
    )
    federation_router_only: bool | None = Field(
        default=None,
        description="Only the router (X-Router-Secret) may query _entities/_service; unset means on in production.",
    )
    max_entities_per_request: int = Field(default=100, ge=1, description="Representations one _entities may take.")
    notification_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often due member notifications are recorded and delivered."
    )
    notification_max_attempts: int = Field(
        default=8, ge=1, le=50, description="Delivery attempts (with backoff) before a notification is dead-lettered."
    )
    kafka_notification_topic: str = "loyalty.notifications"
    relay_lease_seconds: float = Field(default=15.0, gt=0, description="Kafka relay lease; renewed at a third.")
    partner_link_code_ttl_seconds: int = Field(
        default=600, ge=60, le=86_400, description="How long a member's one-time partner link code stays valid."
    )
    checkout_hold_minutes: float = Field(
        default=30.0, gt=0, description="Points deducted at checkout stay on hold this long, then are released."
    )
    support_grant_limit_points: int = Field(
        default=1_000, ge=0, description="Support staff: the most points one hand grant may move (|points| × members)."
    )
    support_daily_grant_limit_points: int = Field(
        default=10_000, ge=0, description="Support staff: the points one agent may move by hand in a local day."
    )
    grant_approval_threshold_points: int = Field(
        default=100_000,
        ge=0,
        description="A hand grant moving more points than this waits for a second admin's approval (two-person rule).",
    )
    grant_request_ttl_hours: float = Field(
        default=72.0, gt=0, description="A grant request not approved or rejected within this expires."
    )
    payment_timeout_minutes: float = Field(
        default=30.0, gt=0, description="A points + cash redemption not paid within this is cancelled."
    )
    hold_sweep_interval_seconds: float = Field(
        default=30.0, gt=0, description="How often a gateway releases holds and unpaid redemptions past their time."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: JSON lines in production, readable lines in development."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_operation_names: int = Field(
        default=200, ge=0, description="Operation names given their own latency series; later ones count as 'other'."
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP endpoint; set (with the tracing extra installed) to turn tracing on."
    )
    otel_service_name: str = "loyalty-gateway"
    ws_per_message_deflate: bool = Field(
        default=False,
        description="Compress WebSocket messages (permessage-deflate). Off: small JSON events gain little, and "
        "every connection would hold its own zlib state and compress each event once per subscriber.",
    )
    access_log: bool | None = Field(
        default=None, description="uvicorn's per-request access log; unset: on in development, off in production."
    )

    @field_validator("mongodb_uri", "kafka_bootstrap_servers", "otel_exporter_otlp_endpoint", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("mongodb_uri")
    @classmethod
    def _mongodb_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value

    @property
    def federation_router_only_effective(self) -> bool:
        if self.federation_router_only is None:
            return self.environment is Environment.PRODUCTION
        return self.federation_router_only

    @property
    def access_log_enabled(self) -> bool:
        """A line per request is formatted and written on the event loop of every request;
        in production /metrics and the application logs say what an operator needs, so it is opt-in."""
        if self.access_log is not None:
            return self.access_log
        return self.environment is Environment.DEVELOPMENT

    @property
    def graphiql_enabled(self) -> bool:
        return self.environment is Environment.DEVELOPMENT

    def resolved_coupon_code_key(self) -> str:
        """The secret coupon codes are sealed and hashed under (``gateway.features.coupons``).

        Production must set ``LOYALTY_COUPON_CODE_KEY`` (and keep it: codes sealed under a lost
        key cannot be shown again); a development gateway keeps a generated one in the data dir.
        """
        if self.coupon_code_key is not None:
            value = self.coupon_code_key.get_secret_value()
            if len(value) < 32:
                raise SettingsError("LOYALTY_COUPON_CODE_KEY must be at least 32 characters")
            return value
        if self.environment is Environment.PRODUCTION:
            raise SettingsError("LOYALTY_COUPON_CODE_KEY is required when LOYALTY_ENVIRONMENT=production")
        path = self.data_dir / "coupon-code-key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def resolved_jwt_secret(self) -> str:
        """The configured secret or, for local use, one kept in the data directory.

        Production must set ``LOYALTY_JWT_SECRET``; a development gateway and the
        ``token`` command share a generated secret so a fresh clone just works.
        """
        if self.jwt_secret is not None:
            value = self.jwt_secret.get_secret_value()
            if len(value) < 32:
                raise SettingsError("LOYALTY_JWT_SECRET must be at least 32 characters")
            return value
        if self.environment is Environment.PRODUCTION:
            raise SettingsError("LOYALTY_JWT_SECRET is required when LOYALTY_ENVIRONMENT=production")
        path = self.data_dir / "jwt-secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()


def load_settings(**overrides: object) -> Settings:
    """Load settings, turning pydantic's report into one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "LOYALTY_" + "_".join(str(p) for p in first["loc"]).upper()
        raise SettingsError(f"{name}: {first['msg']}") from None
