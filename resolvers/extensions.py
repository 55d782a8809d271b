"""Schema extensions of the gateway's one Strawberry schema, gathered in one place."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from gateway.core.logs import get_logger, note_request
from gateway.core.metrics import DURATION, ERRORS, OPERATION_DURATION, OPERATION_NAMES, OPERATIONS

log = get_logger("gateway.graphql")
GRAPHQL_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,99}")


def error_codes(errors: Iterable[GraphQLError]) -> list[str]:
    return [str((error.extensions or {}).get("code", "GRAPHQL_VALIDATION_FAILED")) for error in errors]


class MetricsExtension(SchemaExtension):
    """Times every operation, counts its outcome and error codes, and describes it for the log.

    Over HTTP the description joins the request's one summary line (``gateway.web.request_id``);
    on a WebSocket, where one connection carries many operations, each operation gets its own line.
    Only names and codes are logged: never the document, the variables or the credentials.
    """

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
        context = self.execution_context
        operation_type = _operation_type(context)
        errors = (context.result.errors if context.result else None) or context.pre_execution_errors or []
        codes = error_codes(errors)
        DURATION.labels(operation_type).observe(elapsed)
        OPERATIONS.labels(operation_type, "error" if errors else "ok").inc()
        for code in codes:
            ERRORS.labels(code).inc()
        name = context.operation_name
        # A document that did not parse or validate never ran: its name is the client's word only.
        rejected = bool(errors) and (context.result is None or context.result.data is None)
        rejected = rejected and all(error.path is None for error in errors)
        label = OPERATION_NAMES.label(name, valid=not rejected)
        OPERATION_DURATION.labels(label, operation_type).observe(elapsed)
        fields = {
            "operation": name if name and GRAPHQL_NAME.fullmatch(name) else label,
            "operation_type": operation_type,
            "principal": _principal_kind(context.context),
            "error_codes": sorted(set(codes)),
        }
        if _over_websocket(context.context):
            log.info("graphql operation", duration_ms=round(elapsed * 1000, 2), **fields)
        else:
            note_request(**fields)


def _principal_kind(request_context: Any) -> str:
    """member / admin / dashboard / partner, or anonymous: the kind of caller, never who."""
    principal = getattr(request_context, "principal", None)
    role = getattr(principal, "role", None)
    return str(role.value) if role is not None else "anonymous"


def _over_websocket(request_context: Any) -> bool:
    request = getattr(request_context, "request", None)
    scope = getattr(request, "scope", None)
    return isinstance(scope, dict) and scope.get("type") == "websocket"


def _operation_type(context: Any) -> str:
    """query / mutation / subscription; "unknown" when the document did not parse."""
    try:
        return str(context.operation_type.value)
    except Exception:  # no document, or no operation by that name: a request error
        return "unknown"
