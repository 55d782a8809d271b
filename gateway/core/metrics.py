"""Prometheus metric counters: what an operator graphs and alerts on, with bounded label sets.

Labels are operation types, error codes, ledger entry kinds and a bounded set
of operation names (see ``OperationNames``): never member ids or anything a
client can grow without limit. Only prometheus-client here, so the ledger,
the workers and the store can count without the web stack.
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
TRANSACTION_RETRIES = Counter(
    "loyalty_transaction_retries_total", "Transaction attempts retried after a transient error (write conflicts)"
)
SUBSCRIBERS = Gauge("loyalty_subscribers", "Live subscriptions on this gateway process")


def record_committed(entries: Iterable[dict[str, Any]]) -> None:
    """Count entries only once their transaction committed (retried attempts do not count)."""
    for entry in entries:
        LEDGER_ENTRIES.labels(entry["kind"]).inc()
        LEDGER_POINTS.labels(entry["kind"]).inc(abs(entry["points"]))


# -- operations by name, bounded ----------------------------------------------------------------
# A GraphQL operation name is chosen by the client, so it cannot be a label as it is: the first
# ``limit`` distinct names of operations that passed validation get their own series, any later one
# is counted as "other"; anonymous operations are "anonymous", documents that did not validate
# "invalid". The limit is LOYALTY_METRICS_OPERATION_NAMES (default 200).

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
OPERATION_DURATION = Histogram(
    "loyalty_graphql_operation_duration_seconds",
    "GraphQL operation duration by operation name (bounded: named operations, others grouped)",
    ["operation", "type"],
    buckets=LATENCY_BUCKETS,
)
HTTP_REQUESTS = Counter("loyalty_http_requests_total", "HTTP requests and WebSocket connections by status", ["status"])


class OperationNames:
    """The bounded set of operation names that get their own latency series in this process."""

    def __init__(self, limit: int = 200) -> None:
        self.limit = limit
        self.known: set[str] = set()

    def label(self, name: str | None, *, valid: bool) -> str:
        if not valid:
            return "invalid"
        if not name:
            return "anonymous"
        if name in self.known:
            return name
        if len(self.known) < self.limit and len(name) <= 100 and name.replace("_", "").isalnum():
            self.known.add(name)
            return name
        return "other"


OPERATION_NAMES = OperationNames()


# -- background work ----------------------------------------------------------------------------

RELAY_LAG = Gauge(
    "loyalty_relay_lag_seconds",
    "Age of the newest ledger entry the balance relay published, when it published (0 when caught up)",
)
RELAY_PUBLISHED = Counter("loyalty_relay_published_total", "Balance events published to Kafka by this process")
RELAY_HOLDING = Gauge("loyalty_relay_lease_held", "1 while this process holds the balance relay lease")
PARTNER_LAG = Gauge(
    "loyalty_partner_consumer_lag_messages", "Partner events on the topic not yet consumed by this process's partitions"
)
PARTNER_APPLIED = Counter("loyalty_partner_events_total", "Partner events read from Kafka, by outcome", ["outcome"])
DEAD_LETTERS = Counter(
    "loyalty_partner_dead_letters_total", "Partner events sent to the dead-letter topic, by reason code", ["reason"]
)
EXPIRY_RUNS = Counter("loyalty_expiry_job_runs_total", "Expiry job runs, by outcome (ok, partial, failed)", ["outcome"])
EXPIRY_DURATION = Histogram(
    "loyalty_expiry_job_duration_seconds", "Expiry job run time", buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900)
)
EXPIRY_LAST_SUCCESS = Gauge(
    "loyalty_expiry_job_last_success_timestamp_seconds", "When the expiry job last finished without errors"
)
EXPIRED_POINTS = Counter("loyalty_expiry_job_expired_points_total", "Points expired by the expiry job")


# -- MongoDB connection pool (fed by the driver's pool listener in gateway.store.mongo) ---------

POOL_OPEN = Gauge("loyalty_mongodb_pool_connections_open", "Open pooled connections, by server", ["address"])
POOL_IN_USE = Gauge("loyalty_mongodb_pool_connections_in_use", "Connections checked out, by server", ["address"])
POOL_CHECKOUT = Histogram(
    "loyalty_mongodb_pool_checkout_seconds",
    "Time to check a connection out of the pool",
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
)
POOL_CHECKOUT_FAILED = Counter(
    "loyalty_mongodb_pool_checkout_failures_total", "Connection checkouts that failed, by reason", ["reason"]
)
POOL_CLEARED = Counter("loyalty_mongodb_pool_cleared_total", "Times a server's pool was cleared")
