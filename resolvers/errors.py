"""How errors leave the schema: domain codes kept, anything unexpected masked."""

from __future__ import annotations

import logging

from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from gateway.core.errors import UNAVAILABLE_MESSAGE, DomainError
from gateway.store.mongo import is_unavailable

log = logging.getLogger("gateway.core.errors")


def is_unexpected(error: GraphQLError) -> bool:
    """Validation errors and DomainErrors are for the client; anything else is a bug."""
    original = error.original_error
    return original is not None and not isinstance(original, DomainError | GraphQLError)


class MaskUnexpectedErrors(MaskErrors):
    """No stack trace or internal message reaches a client; it gets a stable code instead."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected, error_message="Internal server error")

    def _process_result(self, result: object) -> None:
        # The base class asks a runtime-checkable Protocol, a slow isinstance that runs for
        # every event of every subscriber; an attribute look-up answers the same question.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        if error.original_error is not None and is_unavailable(error.original_error):
            # An outage is not a bug: the client is told to retry, with a code it can act on.
            return GraphQLError(
                UNAVAILABLE_MESSAGE,
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                extensions={"code": "SERVICE_UNAVAILABLE"},
            )
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL_SERVER_ERROR"}
        return masked


def log_unexpected(errors: list[GraphQLError]) -> None:
    for error in errors:
        if error.original_error is not None and is_unavailable(error.original_error):
            log.warning("MongoDB unavailable in %s: %s", error.path, type(error.original_error).__name__)
        elif is_unexpected(error):
            log.error("Unexpected error in %s", error.path, exc_info=error.original_error)
