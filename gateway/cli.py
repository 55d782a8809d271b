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
    try:  # coupon codes cannot be sealed or shown without it: refuse to start rather than fail a redemption
        settings.resolved_coupon_code_key()
    except SettingsError as exc:
        raise fail(str(exc)) from None
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


audit_log_app = typer.Typer(help="The append-only admin audit log.", no_args_is_help=True)
app.add_typer(audit_log_app, name="audit-log")


@audit_log_app.command("verify")
def audit_log_verify_command() -> None:
    """Check the admin audit log's hash chain; exit 1 naming the first entry edited or removed."""
    report = with_services(settings_or_exit(), lambda s: s.admin_audit.verification())
    if report.broken_at is not None:
        typer.echo(
            f"audit log BROKEN at entry {report.broken_at} of {report.entries}: edited, removed or out of order",
            err=True,
        )
        raise typer.Exit(code=1)
    typer.echo(f"audit log intact: {report.entries} entries, hash chain verified")


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


@import_app.command("coupons")
def import_coupons(
    gift_id: Annotated[str, typer.Argument(help="The VIRTUAL gift whose pool receives the codes.")],
    path: Annotated[
        Path, typer.Argument(help="Codes, one per line (blank lines skipped, surrounding spaces trimmed).")
    ],
    expires_at: Annotated[
        str | None, typer.Option("--expires-at", help="ISO instant the codes stop being valid (default: never).")
    ] = None,
    batch: Annotated[
        str | None, typer.Option(help="Batch id shown in the pool status (default: from the file's name and content).")
    ] = None,
    operator: Annotated[str, typer.Option("--as", help="Operator name recorded in the audit log.")] = "cli",
) -> None:
    """Add a file of coupon codes to a virtual gift's pool, in parts of 10,000, with a progress bar.

    The whole file is checked first: a line that cannot be a code stops the import before anything
    is written. Running the same file again adds nothing (codes already in the pool are skipped).
    """
    import hashlib
    from datetime import datetime

    from gateway.core.auth import Principal
    from gateway.domain.coupons import MAX_IMPORT, plan_import

    text = _read_text(path)
    plan = plan_import(text.splitlines())
    if plan.invalid:
        for line, problem in plan.invalid[:20]:
            typer.echo(f"{path}:{line}: {problem}", err=True)
        raise fail(f"{len(plan.invalid)} lines cannot be coupon codes; nothing was imported")
    try:
        expiry = datetime.fromisoformat(expires_at) if expires_at else None
    except ValueError:
        raise fail("--expires-at must be an ISO instant, e.g. 2027-01-01T00:00:00+08:00") from None
    batch_id = batch or f"{path.stem[:40]}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    console = _stderr_console()
    who = Principal(Role.ADMIN, f"cli:{operator}")

    async def work(services: Services) -> dict[str, int]:
        totals = {"added": 0, "already_in_pool": 0, "in_another_pool": 0}
        with _progress(console) as progress:
            task = progress.add_task(f"importing {path.name}", total=len(plan.codes))
            for start in range(0, len(plan.codes), MAX_IMPORT):
                part = plan.codes[start : start + MAX_IMPORT]
                result = await services.coupons.import_codes(
                    who, gift_id, part, expires_at=expiry, batch_id=batch_id, label=path.name[:80]
                )
                totals["added"] += result.added
                totals["already_in_pool"] += result.already_in_pool
                totals["in_another_pool"] += result.in_another_pool
                progress.advance(task, len(part))
        return totals

    totals = run_operator(settings_or_exit(), work)
    typer.echo(
        f"batch {batch_id}: {totals['added']} added, {totals['already_in_pool']} already in the pool, "
        f"{plan.duplicates_in_input} repeated in the file, {totals['in_another_pool']} in another gift's pool"
    )

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


segment_app = typer.Typer(
    help="Segment grants: points to every member matching a filter, as a resumable job (docs/campaigns.md).",
    no_args_is_help=True,
)
app.add_typer(segment_app, name="segment-grant")
FilterName = Annotated[str | None, typer.Option("--name", help="Part of the display name.")]
FilterPhone = Annotated[str | None, typer.Option("--phone", help="The number or its last digits (4+).")]
FilterEmail = Annotated[str | None, typer.Option("--email", help="The address or its start.")]
FilterTier = Annotated[list[str] | None, typer.Option("--tier", help="A tier code (repeatable: any of them).")]
FilterSegment = Annotated[list[str] | None, typer.Option("--segment", help="An RFM segment (repeatable).")]
FilterFrom = Annotated[str | None, typer.Option("--joined-from", help="Registered at or after (ISO instant).")]
FilterTo = Annotated[str | None, typer.Option("--joined-to", help="Registered before (ISO instant).")]
FilterSpendMin = Annotated[int | None, typer.Option("--spend-min", help="Lifetime spend at least, in fen.")]
FilterSpendMax = Annotated[int | None, typer.Option("--spend-max", help="Lifetime spend at most, in fen.")]


def _member_filter(**raw: Any) -> Any:
    from datetime import datetime

    from gateway.features.members import parse_filter

    for key in ("joined_from", "joined_to"):
        if raw[key] is not None:
            try:
                raw[key] = datetime.fromisoformat(raw[key])
            except ValueError:
                raise fail(f"--{key.replace('_', '-')} is not an ISO instant") from None
    try:
        return parse_filter(**raw)
    except DomainError as exc:
        raise fail(str(exc)) from None


def _job_line(job: dict[str, Any]) -> str:
    total = job.get("total")
    return (
        f"segment grant {job['_id']}: {job['status']}, {job['points']} points each, "
        f"{job['granted']} granted, {job['skipped']} skipped of {total if total is not None else '?'}"
    )


async def _follow(services: Services, job_id: str, console: Any, runner: Any = None) -> dict[str, Any]:
    """A progress bar over the job until it stops moving (or ``runner``, a task, finishes)."""
    from gateway.domain.segment_grants import ACTIVE, JobStatus

    with _progress(console) as progress:
        bar = progress.add_task("snapshot", total=None)
        while True:
            job = await services.segment_grants.get(job_id)
            status = JobStatus(job["status"])
            if job.get("total") is None:
                progress.update(bar, description="taking the snapshot", completed=job.get("snapshotted", 0))
            else:
                done = job["granted"] + job["skipped"]
                progress.update(bar, description=f"granting ({status})", total=job["total"], completed=done)
            if status not in ACTIVE or status is JobStatus.AWAITING_APPROVAL:
                return job
            if runner is not None and runner.done():
                runner.result()  # a failure of the run surfaces here
                return await services.segment_grants.get(job_id)
            await asyncio.sleep(0.2)


@segment_app.command("preview")
def segment_preview(
    points: Annotated[int, typer.Option("--points", help="Points per member.")],
    name: FilterName = None,
    phone: FilterPhone = None,
    email: FilterEmail = None,
    tier: FilterTier = None,
    segment: FilterSegment = None,
    joined_from: FilterFrom = None,
    joined_to: FilterTo = None,
    spend_min: FilterSpendMin = None,
    spend_max: FilterSpendMax = None,
) -> None:
    """The dry run: how many members match, how many points in all, whether approval is needed."""
    member_filter = _member_filter(
        name=name, phone=phone, email=email, tiers=tier, segments=segment, joined_from=joined_from,
        joined_to=joined_to, spend_min=spend_min, spend_max=spend_max,
    )
    result = run_operator(settings_or_exit(), lambda s: s.segment_grants.preview(member_filter, points))
    typer.echo(
        f"dry run: {result['members']} members × {points} points = {result['pointsTotal']} points"
        + (" (needs a second person's approval)" if result["needsApproval"] else "")
    )


@segment_app.command("start")
def segment_start(
    points: Annotated[int, typer.Option("--points", help="Points per member.")],
    reason: Annotated[str, typer.Option("--reason", help="Shown on each member's ledger entry.")],
    key: Annotated[str, typer.Option("--key", help="Idempotency key: the same key starts the same job once.")],
    name: FilterName = None,
    phone: FilterPhone = None,
    email: FilterEmail = None,
    tier: FilterTier = None,
    segment: FilterSegment = None,
    joined_from: FilterFrom = None,
    joined_to: FilterTo = None,
    spend_min: FilterSpendMin = None,
    spend_max: FilterSpendMax = None,
    operator: Annotated[str, typer.Option("--as", help="Operator name recorded in the audit log.")] = "cli",
    wait: Annotated[bool, typer.Option("--run/--no-run", help="Run it here with a progress bar.")] = True,
) -> None:
    """Start a segment grant (audited), then run it here with a progress bar (Ctrl-C: resume with `run`)."""
    from gateway.core.auth import Principal

    member_filter = _member_filter(
        name=name, phone=phone, email=email, tiers=tier, segments=segment, joined_from=joined_from,
        joined_to=joined_to, spend_min=spend_min, spend_max=spend_max,
    )
    console = _stderr_console()

    async def work(services: Services) -> dict[str, Any]:
        job = await services.segment_grants.start(
            Principal(Role.ADMIN, f"cli:{operator}"), member_filter, points, reason, key
        )
        again = " (already started with this key)" if job.get("replayed") else ""
        console.print(f"segment grant {job['_id']}{again}")
        if not wait:
            return job
        return await _run_here(services, str(job["_id"]), console)

    typer.echo(_job_line(run_operator(settings_or_exit(), work)))


async def _run_here(services: Services, job_id: str, console: Any) -> dict[str, Any]:
    """Run the job in this process under the servers' lease, or follow a replica that holds it."""
    from gateway.core.tasks import cancel_and_wait
    from gateway.workers.scheduled import job_lease

    lease = job_lease(services, "segment-grants")
    if await lease.acquire() is None:
        console.print("a gateway replica holds the segment-grants lease: following its progress")
        return await _follow(services, job_id, console)
    runner = asyncio.create_task(services.segment_grants.run_job(job_id))
    keeper = asyncio.create_task(_keep(lease, runner))
    try:
        return await _follow(services, job_id, console, runner)
    finally:
        await cancel_and_wait([runner, keeper])
        await lease.release()


async def _keep(lease: Any, runner: Any) -> None:
    while not runner.done():
        await asyncio.sleep(lease.ttl_ms / 3000)
        if not await lease.renew():
            runner.cancel()


@segment_app.command("run")
def segment_run(job_id: Annotated[str, typer.Argument(help="The job's id.")]) -> None:
    """Resume a job here with a progress bar (each member is still granted exactly once)."""
    console = _stderr_console()
    job = run_operator(settings_or_exit(), lambda s: _run_here(s, job_id, console))
    typer.echo(_job_line(job))


@segment_app.command("status")
def segment_status(job_id: Annotated[str, typer.Argument(help="The job's id.")]) -> None:
    """Where a job stands (follow it with `run`, which only watches while a server runs it)."""
    typer.echo(_job_line(run_operator(settings_or_exit(), lambda s: s.segment_grants.get(job_id))))


@segment_app.command("cancel")
def segment_cancel(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    reason: Annotated[str, typer.Option("--reason")],
    operator: Annotated[str, typer.Option("--as", help="Operator name recorded in the audit log.")] = "cli",
) -> None:
    """Stop a job between batches; members already granted keep their points (audited)."""
    from gateway.core.auth import Principal

    job = run_operator(
        settings_or_exit(),
        lambda s: s.segment_grants.cancel(Principal(Role.ADMIN, f"cli:{operator}"), job_id, reason),
    )
    typer.echo(_job_line(job))


if __name__ == "__main__":
    app()
