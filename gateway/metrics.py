"""Prometheus metrics: what an operator graphs and alerts on, with bounded label sets.

Labels are operation types, error codes and ledger entry kinds: small fixed
sets, never member ids or operation names (unbounded cardinality).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from graphql import GraphQLError
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from strawberry.extensions import SchemaExtension

from gateway.db import Document

OPERATIONS = Counter("loyalty_graphql_operations_total", "GraphQL operations executed", ["type", "outcome"])
DURATION = Histogram("loyalty_graphql_duration_seconds", "GraphQL operation duration", ["type"])
ERRORS = Counter("loyalty_graphql_errors_total", "GraphQL errors by extensions.code", ["code"])
LEDGER_ENTRIES = Counter("loyalty_ledger_entries_total", "Committed ledger entries", ["kind"])
LEDGER_POINTS = Counter("loyalty_ledger_points_total", "Points moved by committed ledger entries (absolute)", ["kind"])
EMBEDDED_MONGOD_UP = Gauge("loyalty_embedded_mongod_up", "1 while the embedded mongod of this gateway runs")
EMBEDDED_MONGOD_RESTARTS = Counter(
    "loyalty_embedded_mongod_restarts_total", "Times the embedded mongod died and was restarted by the gateway"
)
WORKER_UP = Gauge("loyalty_worker_up", "1 while a background worker runs, 0 while it waits to restart", ["worker"])
WORKER_RESTARTS = Counter("loyalty_worker_restarts_total", "Background worker crashes (each is retried)", ["worker"])
SUBSCRIBERS = Gauge("loyalty_subscribers", "Live subscriptions on this gateway process")


def record_committed(entries: Iterable[Document]) -> None:
    """Count entries only once their transaction committed (retried attempts do not count)."""
    for entry in entries:
        LEDGER_ENTRIES.labels(entry["kind"]).inc()
        LEDGER_POINTS.labels(entry["kind"]).inc(abs(entry["points"]))


def error_codes(errors: Iterable[GraphQLError]) -> list[str]:
    return [str((error.extensions or {}).get("code", "GRAPHQL_VALIDATION_FAILED")) for error in errors]


class MetricsExtension(SchemaExtension):
    """Times every operation and counts its outcome and error codes."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        operation_type = _operation_type(context)
        errors = (context.result.errors if context.result else None) or context.pre_execution_errors or []
        DURATION.labels(operation_type).observe(time.perf_counter() - started)
        OPERATIONS.labels(operation_type, "error" if errors else "ok").inc()
        for code in error_codes(errors):
            ERRORS.labels(code).inc()


def _operation_type(context: Any) -> str:
    """query / mutation / subscription; "unknown" when the document did not parse."""
    try:
        return str(context.operation_type.value)
    except Exception:  # no document, or no operation by that name: a request error
        return "unknown"


async def metrics_endpoint(request: Request) -> Response:
    services = getattr(request.app.state, "services", None)
    if services is not None:
        SUBSCRIBERS.set(services.hub.subscriber_count())
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
