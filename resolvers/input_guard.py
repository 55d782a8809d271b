"""Refuse unsafe text in any string input before execution (see gateway/domain/text.py).

One check for every operation, present and future: each variable value (object keys too)
and each string literal of the document. A refusal is a request error with
``BAD_USER_INPUT`` and ``extensions.field`` naming where; the value is never echoed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import ExecutionResult, GraphQLError, StringValueNode, visit
from graphql.language import Visitor
from strawberry.extensions import SchemaExtension

from gateway.domain.text import unsafe_character


def find_unsafe(value: Any, path: str) -> tuple[str, str] | None:
    """(path, U+XXXX) of the first unsafe character in a JSON-like value, or None."""
    if isinstance(value, str):
        bad = unsafe_character(value)
        return (path, bad) if bad else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = find_unsafe(key, path) or find_unsafe(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = find_unsafe(item, f"{path}[{index}]")
            if found:
                return found
    return None


class _StringLiterals(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found: str | None = None

    def enter_string_value(self, node: StringValueNode, *_: Any) -> Any:
        self.found = unsafe_character(node.value)
        return Visitor.BREAK if self.found else None


class InputTextGuard(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        found = find_unsafe(context.variables or {}, "$")
        if found is None and context.query and "\\u" in context.query and context.graphql_document:
            # Escapes in string literals are the only way an unsafe character gets past the lexer.
            literals = _StringLiterals()
            visit(context.graphql_document, literals)
            if literals.found:
                found = ("a string literal", literals.found)
        if found is not None:
            where, character = found
            field = where[2:] if where.startswith("$.") else where
            context.result = ExecutionResult(
                data=None,
                errors=[
                    GraphQLError(
                        f"Text input {field} contains a character that is not allowed ({character}): "
                        "control characters, bidirectional overrides and lone surrogates are refused",
                        extensions={"code": "BAD_USER_INPUT", "field": field},
                    )
                ],
            )
        yield
