"""Domain errors that reach clients as GraphQL errors with a stable ``extensions.code``."""

from __future__ import annotations

import re
from typing import Any

_NOT_SHOWN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def quote(value: object, limit: int = 40) -> str:
    """User input as an error message may show it: a string without control or bidi
    characters, truncated, in double quotes. Anything that is not a string is not echoed
    (no Python repr such as ``{'$ne': None}`` ever reaches a client)."""
    if not isinstance(value, str):
        return "(not a string)"
    clean = _NOT_SHOWN.sub("\ufffd", value)
    if len(clean) > limit:
        clean = clean[: limit - 1] + "\u2026"
    return '"' + clean.replace('"', "'") + '"'


class DomainError(Exception):
    """An expected failure: the client gets ``message`` and ``extensions.code``.

    graphql-core copies ``extensions`` from the original exception onto the
    GraphQL error, so raising one of these from any layer is enough.
    """

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extensions: dict[str, Any] = {"code": self.code, **details}


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class NotFound(DomainError):
    code = "NOT_FOUND"


class BadInput(DomainError):
    code = "BAD_USER_INPUT"


UNAVAILABLE_MESSAGE = (
    "The service is temporarily unavailable; retry shortly (a mutation retried with the same "
    "idempotencyKey applies at most once)"
)


class ServiceUnavailable(DomainError):
    """A dependency (MongoDB) cannot be reached: retry later; nothing was half-applied."""

    code = "SERVICE_UNAVAILABLE"


class IdempotencyConflict(DomainError):
    code = "IDEMPOTENCY_CONFLICT"


class Conflict(DomainError):
    """An admin write named a version that is no longer current: re-read and retry."""

    code = "CONFLICT"


def member_not_found(member_id: str) -> NotFound:
    return NotFound(f"Member {quote(member_id)} not found", code="MEMBER_NOT_FOUND")
