"""The ``loyalty-gateway`` command line."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, TypeVar

import typer

from gateway.auth import Role, mint_token
from gateway.clock import SystemClock
from gateway.embedded_mongo import EmbeddedMongoError
from gateway.errors import DomainError
from gateway.services import Services
from gateway.settings import Settings, SettingsError, load_settings

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
    """Serve GraphQL on /graphql (HTTP and WebSocket), /healthz and /readyz."""
    import uvicorn

    from gateway.app import create_app
    from gateway.server import GatewayServer

    settings = settings_or_exit(host=host, port=port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if demo:
        seed_demo_into(settings)
    app_ = create_app(settings)
    typer.echo(f"loyalty-gateway on http://{settings.host}:{settings.port}/graphql", err=True)
    try:
        config = uvicorn.Config(app_, host=settings.host, port=settings.port, log_level="info", lifespan="on")
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


def seed_demo_into(settings: Settings) -> None:
    from gateway.demo import seed_demo

    summary = with_services(settings, seed_demo)
    typer.echo(summary, err=True)


@app.command("seed-demo")
def seed_demo_command() -> None:
    """Load demo members across all tiers (safe to run twice)."""
    seed_demo_into(settings_or_exit())


if __name__ == "__main__":
    app()
