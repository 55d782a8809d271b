"""Schema extensions of the gateway's one Strawberry schema, gathered in one place."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from gateway.core.metrics import DURATION, ERRORS, OPERATIONS


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
