"""The ``loyalty-gateway`` command line."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from gateway.core.auth import Role, mint_token
from gateway.core.clock import SystemClock
from gateway.core.errors import DomainError
from gateway.core.logs import configure_logging
from gateway.core.settings import Environment, Settings, SettingsError, load_settings
from gateway.services import Services
from gateway.store.embedded_mongod import DataDirLock, EmbeddedMongoError

T = TypeVar("T")
app = typer.Typer(help="GraphQL federated loyalty gateway.", no_args_is_help=True, add_completion=False)


def package_version() -> str:
    """The installed distribution's version (the wheel's metadata), or the source tree's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("loyalty-gateway")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"loyalty-gateway {package_version()}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """GraphQL federated loyalty gateway."""


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def setup_logging(settings: Settings) -> None:
    """JSON lines in production, readable lines in development (LOYALTY_LOG_FORMAT overrides)."""
    configure_logging(
        settings.log_format, production=settings.environment is Environment.PRODUCTION, level=settings.log_level
    )


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
    if not settings.mongodb_uri:
        try:  # refuse before uvicorn starts, so the operator reads one line instead of a traceback
            DataDirLock(settings.data_dir).check_free()
        except EmbeddedMongoError as exc:
            raise fail(str(exc)) from None
    setup_logging(settings)
    app_ = create_app(settings, demo=demo)
    if settings.otel_exporter_otlp_endpoint:
        from gateway.web.tracing import TracingUnavailable, enable_tracing

        try:
            enable_tracing(app_, settings)
        except TracingUnavailable as exc:
            raise fail(str(exc)) from None
    typer.echo(f"loyalty-gateway on http://{settings.host}:{settings.port}/graphql", err=True)
    try:
        config = uvicorn.Config(
            app_,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            log_config=None,  # keep the structured logging configured above
            lifespan="on",
            ws_max_size=settings.max_body_bytes,  # a WebSocket message is bounded like an HTTP body
            # uvicorn's own line per request; the request id middleware logs its structured line regardless
            access_log=settings.access_log_enabled,
            ws_per_message_deflate=settings.ws_per_message_deflate,
        )
        GatewayServer(config).run()
    except (EmbeddedMongoError, SettingsError) as exc:
        raise fail(str(exc)) from None


@app.command()
def probe(
    path: Annotated[str, typer.Option(help="Path to GET on this gateway.")] = "/readyz",
    host: Annotated[str, typer.Option(help="Address to ask (the gateway's own by default).")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port (LOYALTY_PORT).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for an answer.")] = 2.0,
) -> None:
    """Exit 0 if the gateway answers PATH with 200 (the container healthcheck: no curl in a slim image)."""
    import urllib.error
    import urllib.request

    if not path.startswith("/"):
        raise fail("--path must start with /")
    if port is None:
        try:
            port = load_settings().port
        except SettingsError as exc:
            raise fail(str(exc)) from None
    target = f"http://{host}:{port}{path}"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        typer.echo(f"{target}: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"{target}: {status}")
    if status != 200:
        raise typer.Exit(code=1)


@app.command()
def token(
    role: Annotated[
        Role, typer.Option(help="member, admin, support, finance, warehouse, marketing, dashboard or payments.")
    ] = Role.ADMIN,
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
    setup_logging(settings)

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


# -- operator data: program YAML, CSV imports, ledger export, backup and restore ----------------
# Each command is a thin call into a feature (gateway.features.imports, program_transfer,
# ledger_export, backup); progress bars go to stderr and only on a terminal.

program_app = typer.Typer(help="Program configuration as YAML: export, and import with a diff.", no_args_is_help=True)
import_app = typer.Typer(
    help="Import members, gifts or mass grants from CSV (dry run, per-row errors, resumable).", no_args_is_help=True
)
ledger_app = typer.Typer(help="Ledger exports for accountants.", no_args_is_help=True)
app.add_typer(program_app, name="program")
app.add_typer(import_app, name="import")
app.add_typer(ledger_app, name="ledger")

EXIT_ROWS_FAILED = 1
EXIT_INTERRUPTED = 130


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _progress(console: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def run_operator(settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
    """Like with_services, and SIGTERM (docker stop) interrupts as Ctrl-C does, so imports checkpoint."""
    import signal

    from gateway.domain.imports import HeaderError
    from gateway.features.backup import BackupError
    from gateway.runtime import open_services

    async def run() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        if task is not None:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        async with open_services(settings) as services:
            return await work(services)

    try:
        return asyncio.run(run())
    except (EmbeddedMongoError, SettingsError, DomainError, HeaderError, BackupError) as exc:
        raise fail(str(exc)) from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        typer.echo("interrupted: run the same command again to resume where it stopped", err=True)
        raise typer.Exit(code=EXIT_INTERRUPTED) from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{path}: {exc}") from None


@program_app.command("export")
def program_export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Print the current program configuration as YAML."""
    from gateway.features.program_transfer import program_yaml
    from gateway.store.program import load_program

    async def work(services: Services) -> str:
        return program_yaml(await load_program(services.db))

    text = run_operator(settings_or_exit(), work)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


@program_app.command("import")
def program_import(
    path: Annotated[Path, typer.Argument(help="A YAML file, as written by `program export`.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and show the diff; change nothing.")] = False,
) -> None:
    """Validate a program YAML file, show what changes, and (unless --dry-run) apply it."""
    from gateway.features.program_transfer import apply_import, plan_import

    text = _read_text(path)

    async def work(services: Services) -> list[str]:
        plan = await plan_import(services.db, text)
        lines = [str(change) for change in plan.changes]
        if plan.changes and not dry_run:
            await apply_import(services.db, plan)
        return lines

    lines = run_operator(settings_or_exit(), work)
    for line in lines:
        typer.echo(line)
    if not lines:
        typer.echo("no changes: the program already matches the file")
    elif dry_run:
        typer.echo(f"dry run: {len(lines)} changes would apply; nothing was saved")
    else:
        typer.echo(f"applied {len(lines)} changes")


def _error_report_path(path: Path, errors: Path | None) -> Path:
    return errors if errors is not None else path.with_name(path.name + ".errors.csv")


def _write_error_report(target: Path, failures: list[Any], columns: list[str]) -> None:
    """The per-row report: every failed row of the run, those before an interruption included."""
    import csv

    with target.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["line", "code", "error", *columns])
        for failure in failures:
            writer.writerow([failure.line, failure.code, failure.message, *(failure.raw.get(c, "") for c in columns)])


def _import(kind_name: str, path: Path, dry_run: bool, batch: str | None, errors: Path | None) -> None:
    from gateway.domain.imports import COLUMNS, ImportKind
    from gateway.features.imports import ImportReport, RowOutcome

    kind = ImportKind(kind_name)
    text = _read_text(path)
    console = _stderr_console()
    report_holder: dict[str, ImportReport] = {}

    async def work(services: Services) -> ImportReport:
        with _progress(console) as progress:
            task = progress.add_task(f"{'checking' if dry_run else 'importing'} {path.name}", total=None)

            def started(report: ImportReport) -> None:
                report_holder["report"] = report
                done = sum(report.counts.values())
                progress.update(task, total=report.rows, completed=done)
                if report.resumed_from is not None:
                    console.print(f"resuming at line {report.resumed_from} ({done} rows were done before)")
                if report.restarted:
                    console.print("the file changed since the interrupted run: starting over (done rows are kept)")

            def row(outcome: RowOutcome) -> None:
                progress.advance(task)

            return await services.importer.run(
                kind, text, batch=batch or path.stem, dry_run=dry_run, on_start=started, on_row=row
            )

    target = _error_report_path(path, errors)
    columns = list(COLUMNS[kind].all)
    try:
        report = run_operator(settings_or_exit(), work)
    except typer.Exit:
        partial = report_holder.get("report")
        if partial is not None and partial.failures:
            _write_error_report(target, partial.failures, columns)
        raise
    typer.echo(("dry run: " if dry_run else "") + report.summary())
    failed = len(report.failures)  # a resumed run includes the failures before the interruption
    if failed:
        _write_error_report(target, report.failures, columns)
        for failure in report.failures[:20]:
            typer.echo(f"line {failure.line}: {failure.code}: {failure.message}", err=True)
        if len(report.failures) > 20:
            typer.echo(f"... and {len(report.failures) - 20} more", err=True)
        typer.echo(f"{failed} rows failed; the good rows were applied. Report: {target}", err=True)
        raise typer.Exit(code=EXIT_ROWS_FAILED)
    if target.exists() and not dry_run:
        target.unlink()  # a stale report from an earlier run of this file would mislead


DRY_RUN = Annotated[bool, typer.Option("--dry-run", help="Check every row against the database; write nothing.")]
BATCH_OPTION = Annotated[
    str | None, typer.Option(help="Name of this import (default: the file name); a run resumes by it.")
]
ERRORS_OPTION = Annotated[Path | None, typer.Option(help="Per-row error report (default: FILE.errors.csv).")]


@import_app.command("members")
def import_members(
    path: Annotated[Path, typer.Argument(help="CSV: id,display_name[,email,phone,birthday,referrer_id]")],
    dry_run: DRY_RUN = False,
    batch: BATCH_OPTION = None,
    errors: ERRORS_OPTION = None,
) -> None:
    """Register members from CSV; a member whose id exists with the same details is left as is."""
    _import("members", path, dry_run, batch, errors)


@import_app.command("gifts")
def import_gifts(
    path: Annotated[Path, typer.Argument(help="CSV: id,name,category,cost_price,points,stock[,...]")],
    dry_run: DRY_RUN = False,
    batch: BATCH_OPTION = None,
    errors: ERRORS_OPTION = None,
) -> None:
    """Create points-mall gifts from CSV; a gift whose id exists with the same details is left as is."""
    _import("gifts", path, dry_run, batch, errors)


@import_app.command("grants")
def import_grants(
    path: Annotated[Path, typer.Argument(help="CSV: member_id,points,reason[,key]")],
    dry_run: DRY_RUN = False,
    batch: BATCH_OPTION = None,
    errors: ERRORS_OPTION = None,
) -> None:
    """Grant (or, negative, adjust) points per row through the ledger; each row at most once per batch."""
    _import("grants", path, dry_run, batch, errors)


class ExportFormat(StrEnum):
    CSV = "csv"
    NDJSON = "ndjson"


@ledger_app.command("export")
def ledger_export(
    start: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD, program timezone) or ISO instant.")],
    end: Annotated[str, typer.Option("--to", help="Day after the last (exclusive), or ISO instant.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="csv or ndjson.")] = ExportFormat.CSV,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Every ledger entry written in [--from, --to), oldest first."""
    from gateway.features.ledger_export import count, export_lines, period
    from gateway.store.program import load_program

    console = _stderr_console()

    async def work(services: Services) -> int:
        program = await load_program(services.db)
        begin, finish = period(start, end, program.timezone)
        total = await count(services.db, begin, finish)
        sink = output.open("wb") if output is not None else sys.stdout.buffer
        try:
            with _progress(console) as progress:
                task = progress.add_task("exporting ledger", total=total)
                lines = export_lines(services.db, begin, finish, fmt.value)
                if fmt is ExportFormat.CSV:
                    sink.write(await anext(lines))  # the header
                async for line in lines:
                    sink.write(line)
                    progress.advance(task)
        finally:
            if output is not None:
                sink.close()
            else:
                sink.flush()
        return total

    total = run_operator(settings_or_exit(), work)
    typer.echo(f"exported {total} ledger entries", err=True)


@app.command("backup")
def backup_command(
    directory: Annotated[Path, typer.Argument(help="An empty or new directory for the backup.")],
) -> None:
    """Write every collection (one consistent snapshot) and a checksummed manifest to DIRECTORY."""
    from gateway.features.backup import backup

    console = _stderr_console()

    async def work(services: Services) -> str:
        with _progress(console) as progress:
            tasks: dict[str, Any] = {}

            def step(name: str, n: int) -> None:
                if name not in tasks:
                    tasks[name] = progress.add_task(name, total=None)
                progress.advance(tasks[name], n)

            dumps = await backup(
                services.db, directory, now=services.clock.now(), version=package_version(), progress=step
            )
        return f"backed up {sum(d.count for d in dumps)} documents in {len(dumps)} collections to {directory}"

    typer.echo(run_operator(settings_or_exit(), work))


@app.command("restore")
def restore_command(
    directory: Annotated[Path, typer.Argument(help="A directory written by `loyalty-gateway backup`.")],
    replace: Annotated[bool, typer.Option(help="Replace the collections of a database that is not empty.")] = False,
) -> None:
    """Verify a backup's checksums, load it, count it, then audit every balance against the ledger."""
    from gateway.features.backup import restore

    console = _stderr_console()

    async def work(services: Services) -> Any:
        with _progress(console) as progress:
            tasks: dict[str, Any] = {}

            def step(name: str, n: int) -> None:
                if name not in tasks:
                    tasks[name] = progress.add_task(f"restoring {name}", total=None)
                progress.advance(tasks[name], n)

            return await restore(services.db, directory, replace=replace, progress=step)

    report = run_operator(settings_or_exit(), work)
    typer.echo(f"restored {sum(report.counts.values())} documents in {len(report.counts)} collections")
    for mismatch in report.mismatches:
        typer.echo(f"MISMATCH {mismatch}")
    if report.mismatches:
        typer.echo(f"{len(report.mismatches)} mismatches after restore", err=True)
        raise typer.Exit(code=1)
    typer.echo("audit clean: balances reconcile with the ledger")


if __name__ == "__main__":
    app()
