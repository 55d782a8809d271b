"""Prometheus metric counters: what an operator graphs and alerts on, with bounded label sets.

Labels are operation types, error codes and ledger entry kinds: small fixed
sets, never member ids or operation names (unbounded cardinality). Only
prometheus-client here, so the ledger can count without the web stack.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

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


def record_committed(entries: Iterable[dict[str, Any]]) -> None:
    """Count entries only once their transaction committed (retried attempts do not count)."""
    for entry in entries:
        LEDGER_ENTRIES.labels(entry["kind"]).inc()
        LEDGER_POINTS.labels(entry["kind"]).inc(abs(entry["points"]))
