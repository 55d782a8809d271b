"""The ``loyalty-gateway`` command line."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from gateway.core.auth import Role, mint_token
from gateway.core.clock import SystemClock
from gateway.core.errors import DomainError
from gateway.core.settings import Settings, SettingsError, load_settings
from gateway.services import Services
from gateway.store.embedded_mongod import EmbeddedMongoError

T = TypeVar("T")
app = typer.Typer(help="GraphQL federated loyalty gateway.", no_args_is_help=True, add_completion=False)


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def settings_or_exit(**overrides: object) -> Settings:
    try:
        settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
        settings.resolved_jwt_secret()
        return settings
    except SettingsError as exc:
        raise fail(str(exc)) from None


def with_services(settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
    """Run one command against the program's MongoDB (embedded when none is configured)."""
    from gateway.runtime import open_services

    async def run() -> T:
        async with open_services(settings) as services:
            return await work(services)

    try:
        return asyncio.run(run())
    except (EmbeddedMongoError, SettingsError, DomainError) as exc:
        raise fail(str(exc)) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (LOYALTY_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (LOYALTY_PORT).")] = None,
    demo: Annotated[bool, typer.Option(help="Load demo data before serving.")] = False,
) -> None:
    """Serve GraphQL on /graphql (HTTP and WebSocket), /healthz, /readyz and /metrics."""
    import uvicorn

    from gateway.web.app import create_app
    from gateway.web.server import GatewayServer

    settings = settings_or_exit(host=host, port=port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app_ = create_app(settings, demo=demo)
    typer.echo(f"loyalty-gateway on http://{settings.host}:{settings.port}/graphql", err=True)
    try:
        config = uvicorn.Config(
            app_,
            host=settings.host,
            port=settings.port,
            log_level="info",
            lifespan="on",
            ws_max_size=settings.max_body_bytes,  # a WebSocket message is bounded like an HTTP body
            access_log=settings.access_log_enabled,
        )
        GatewayServer(config).run()
    except (EmbeddedMongoError, SettingsError) as exc:
        raise fail(str(exc)) from None


@app.command()
def token(
    role: Annotated[Role, typer.Option(help="member, admin or dashboard.")] = Role.ADMIN,
    subject: Annotated[str, typer.Option("--sub", help="Subject: the member id for member tokens.")] = "local-admin",
    hours: Annotated[float, typer.Option(help="Lifetime in hours.")] = 24.0,
) -> None:
    """Mint a bearer token signed with the gateway's secret, for local use."""
    if role is Role.PARTNER:
        raise fail("partners authenticate with an API key (createPartner), not a token")
    settings = settings_or_exit()
    typer.echo(
        mint_token(
            settings.resolved_jwt_secret(),
            role=role,
            subject=subject,
            now=SystemClock().now(),
            ttl=timedelta(hours=hours),
        )
    )


@app.command("export-schema")
def export_schema() -> None:
    """Print the schema's SDL (the checked-in schema.graphql must match it)."""
    from resolvers.schema import schema

    sys.stdout.write(schema.as_str() + "\n")


@app.command("seed-demo")
def seed_demo_command() -> None:
    """Load demo members across all tiers (safe to run twice)."""
    from gateway.demo.seed import seed_demo

    typer.echo(with_services(settings_or_exit(), seed_demo), err=True)


@app.command("expire-points")
def expire_points_command() -> None:
    """Expire due points lots and release closed return windows (safe to run concurrently)."""
    from gateway.features.expiry import expire_points

    report = with_services(settings_or_exit(), lambda s: expire_points(s.db, s.ledger))
    typer.echo(str(report))
    for error in report.errors:
        typer.echo(f"error: {error}", err=True)
    if report.errors:
        raise typer.Exit(code=1)


@app.command("reevaluate-tiers")
def reevaluate_tiers_command() -> None:
    """Re-evaluate every member's tier over the program's rolling validity window (downgrades too)."""
    from gateway.features.tiering import reevaluate_all

    report = with_services(settings_or_exit(), lambda s: reevaluate_all(s.db, s.ledger))
    typer.echo(str(report))


@app.command("audit")
def audit_command() -> None:
    """Check every member's balances against the ledger and lots; exit 1 if anything mismatches."""
    from gateway.features.audit import audit_all

    mismatches = with_services(settings_or_exit(), lambda s: audit_all(s.db))
    for mismatch in mismatches:
        typer.echo(f"MISMATCH {mismatch}")
    if mismatches:
        typer.echo(f"{len(mismatches)} mismatches", err=True)
        raise typer.Exit(code=1)
    typer.echo("audit clean: balances reconcile with the ledger")


@app.command("consume-partner-events")
def consume_partner_events(
    idle_exit: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without a message (default: run forever).")
    ] = None,
) -> None:
    """Apply partner events from Kafka (LOYALTY_KAFKA_BOOTSTRAP_SERVERS); bad ones go to the dead-letter topic."""
    from gateway.workers.partner_consumer import PartnerEventConsumer

    settings = settings_or_exit()
    if not settings.kafka_bootstrap_servers:
        raise fail("LOYALTY_KAFKA_BOOTSTRAP_SERVERS is not set")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def work(services: Services) -> str:
        stats = await PartnerEventConsumer(services).run(idle_exit=idle_exit)
        return (
            f"read {stats.read}, applied {stats.applied}, replayed {stats.replayed}, "
            f"dead-lettered {stats.dead_lettered}"
        )

    typer.echo(with_services(settings, work), err=True)


@app.command("persist-queries")
def persist_queries_command(
    files: Annotated[list[Path], typer.Argument(help="FILE.graphql documents, or Apollo manifest .json files.")],
) -> None:
    """Register a client's operations in the allow-list (all or nothing; each must validate)."""
    from resolvers.documents import DocumentError, Operation, operations_in_graphql, operations_in_manifest

    operations: list[Operation] = []
    try:
        for path in files:
            text = path.read_text()
            found = operations_in_manifest(text, str(path)) if path.suffix == ".json" else None
            operations.extend(found if found is not None else operations_in_graphql(text, str(path)))
    except (OSError, DocumentError) as exc:
        raise fail(str(exc)) from None

    async def register(services: Services) -> list[tuple[str, str | None]]:
        return [
            (
                await services.persisted_queries.register(op.text, allow_listed=True, name=op.name, source="cli"),
                op.name,
            )
            for op in operations
        ]

    for sha, name in with_services(settings_or_exit(), register):
        typer.echo(f"{sha} {name or '(anonymous)'}")
    typer.echo(f"{len(operations)} operations allow-listed", err=True)


if __name__ == "__main__":
    app()
