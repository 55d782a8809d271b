"""Domain errors that reach clients as GraphQL errors with a stable ``extensions.code``."""

from __future__ import annotations

from typing import Any


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


class IdempotencyConflict(DomainError):
    code = "IDEMPOTENCY_CONFLICT"


class Conflict(DomainError):
    """An admin write named a version that is no longer current: re-read and retry."""

    code = "CONFLICT"


def member_not_found(member_id: str) -> NotFound:
    return NotFound(f"Member {member_id!r} not found", code="MEMBER_NOT_FOUND")
