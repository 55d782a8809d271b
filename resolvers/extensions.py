"""Schema extensions of the gateway's one Strawberry schema, gathered in one place."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import MaxTokensLimiter, ParserCache, SchemaExtension, ValidationCache

from gateway.core.hardening import OperationLimits
from gateway.core.logs import get_logger, note_request
from gateway.core.metrics import DURATION, ERRORS, OPERATION_DURATION, OPERATION_NAMES, OPERATIONS
from resolvers.federation import is_router
from resolvers.operation_limits import INTROSPECTION_FIELDS, check

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


# ---- operation limits, request error codes, introspection (docs/hardening.md)

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
BAD_USER_INPUT = "BAD_USER_INPUT"
TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
_SUGGESTION = re.compile(r"\s*Did you mean .*\?$", re.DOTALL)


def limits_of(execution_context: Any) -> OperationLimits:
    """The limits of the gateway serving this operation (defaults when run without one)."""
    services = getattr(execution_context.context, "services", None)
    settings = getattr(services, "settings", None)
    return settings.operation_limits if settings is not None else OperationLimits()


def _is_router(execution_context: Any) -> bool:
    services = getattr(execution_context.context, "services", None)
    request = getattr(execution_context.context, "request", None)
    if services is None or request is None:
        return False
    return is_router(services.settings, getattr(request, "headers", None))


def _principal_role(execution_context: Any) -> str | None:
    principal = getattr(execution_context.context, "principal", None)
    return str(principal.role.value) if principal is not None else None


def _python_texts(error: BaseException) -> list[str]:
    """Texts of the non-GraphQL exceptions behind an error (a scalar's ValueError, say)."""
    texts: list[str] = []
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if not isinstance(current, GraphQLError) and str(current):
            texts.append(str(current))
        stack.extend([getattr(current, "original_error", None), current.__cause__, current.__context__])
    return texts


def clean_message(error: GraphQLError, *, hide_suggestions: bool) -> str:
    """The message without Python exception text (and, with introspection off, schema hints)."""
    message = error.message
    for text in _python_texts(error):
        message = message.replace(text, "")
    if hide_suggestions:
        message = _SUGGESTION.sub("", message)
    if message != error.message:
        message = re.sub(r"[\s.;:,]+$", "", message) + "."
    return message


def sanitise(error: GraphQLError, *, hide_suggestions: bool) -> None:
    error.message = clean_message(error, hide_suggestions=hide_suggestions)


def _coded_copy(error: GraphQLError, code: str, hide_suggestions: bool) -> GraphQLError:
    copy = GraphQLError(
        clean_message(error, hide_suggestions=hide_suggestions),
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions=dict(error.extensions or {}),
    )
    _code(copy, code)
    return copy


def _code(error: GraphQLError, code: str) -> None:
    if not (error.extensions or {}).get("code"):
        error.extensions = {**(error.extensions or {}), "code": code}


class TokenLimit(MaxTokensLimiter):
    """Strawberry's MaxTokensLimiter with the gateway's configured limit: lexing stops at the limit."""

    def __init__(self) -> None:
        super().__init__(max_token_count=OperationLimits().max_tokens)

    def on_operation(self) -> Iterator[None]:
        self.max_token_count = limits_of(self.execution_context).max_tokens
        yield from super().on_operation()


class GuardedParserCache(ParserCache):
    """Strawberry's ParserCache, leaving a document that does not parse to Strawberry's own parse step,
    which turns the syntax error into a request error (a raise from here would escape a WebSocket)."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        with contextlib.suppress(GraphQLError):  # Strawberry parses again and reports it
            context.graphql_document = self.cached_parse_document(context.query, **context.parse_options)
        yield


class GuardedValidationCache(ValidationCache):
    """Strawberry's ValidationCache, keeping a refusal OperationGuard already made instead of validating."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if not context.pre_execution_errors:
            errors = self.cached_validate_document(
                context.schema._schema, context.graphql_document, context.validation_rules
            )
            context.pre_execution_errors = list(errors)  # this request's own list: OperationGuard edits it
        yield


class OperationGuard(SchemaExtension):
    """Refuses an operation over the limits before it is validated or run, and codes request errors.

    The limits are checked in ``on_validate`` before graphql-core's own rules run (so a document
    of 1,000 aliases never reaches the quadratic overlapping-fields rule); a refusal sets the
    request errors and nothing executes. Parse, validation and variable-coercion errors get
    GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED and BAD_USER_INPUT, as Apollo Server does.
    List it before MaskUnexpectedErrors and after any validation cache.
    """

    def on_parse(self) -> Iterator[None]:
        yield
        # A syntax error is raised afresh by each parse (never cached): coded in place.
        for error in self.execution_context.pre_execution_errors or []:
            _code(error, TOO_MANY_TOKENS if "tokens. Parsing aborted" in error.message else PARSE_FAILED)
            sanitise(error, hide_suggestions=False)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        limits = limits_of(context)
        if context.graphql_document is not None and context.pre_execution_errors is None:
            allowed = INTROSPECTION_FIELDS if limits.introspection else frozenset()
            if _principal_role(context) == "admin" or _is_router(context):
                # supergraph composition reads the SDL; in production RouterOnlyFederation then
                # admits only the router (its shared secret), whoever else asks
                allowed = allowed | {"_service"}
            errors = check(
                context.schema._schema,
                context.graphql_document,
                context.variables,
                limits,
                introspection_allowed=allowed,
            )
            if errors:
                context.pre_execution_errors = errors
        yield
        found = context.pre_execution_errors
        if found:
            # In place (the request error returned is this list), with copies of the errors: a
            # validation cache shares its error objects between requests and gateways.
            found[:] = [_coded_copy(error, VALIDATION_FAILED, not limits.introspection) for error in found]

    def on_execute(self) -> Iterator[None]:
        yield
        self._finish(self.execution_context.result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        self._finish(result)
        yield

    def _finish(self, result: Any) -> None:
        errors = getattr(result, "errors", None) or []
        hide = not limits_of(self.execution_context).introspection
        for error in errors:
            if error.path is None:
                _code(error, BAD_USER_INPUT)  # variables that do not coerce, before any field ran
                sanitise(error, hide_suggestions=hide)
            elif error.original_error is None:
                _code(error, "INTERNAL_SERVER_ERROR")  # graphql-core's own, e.g. null in a non-null field
