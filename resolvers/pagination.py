"""Cursor pagination (Relay-style connections) shared by every list."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Generic, TypeVar

import strawberry

from gateway.core.errors import BadInput
from gateway.domain.text import unsafe_character

T = TypeVar("T")
MAX_PAGE = 100


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @property
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def decode_cursor(cursor: str | None) -> str | None:
    """The value inside a cursor this gateway handed out; anything else is BAD_USER_INPUT.

    Each connection also checks the value's shape (a sequence number, an id...), so a
    well-formed but foreign cursor is refused too, never answered with an empty page.
    """
    if cursor is None:
        return None
    try:
        value = base64.urlsafe_b64decode(cursor.encode("ascii")).decode()
    except ValueError:  # not ASCII, not base64, not UTF-8 (UnicodeError is a ValueError)
        raise BadInput("after is not a valid cursor", field="after") from None
    if not value or encode_cursor(value) != cursor or unsafe_character(value, single_line=True):
        raise BadInput("after is not a valid cursor", field="after")
    return value


def page_size(first: int) -> int:
    if not 1 <= first <= MAX_PAGE:
        raise BadInput(f"first must be between 1 and {MAX_PAGE}", field="first")
    return first


def connection(items: list[T], first: int, cursor_of: Callable[[T], str]) -> Connection[T]:
    """Build a page from ``first + 1`` fetched items: the extra one only says there is more."""
    page = items[:first]
    edges = [Edge(cursor=encode_cursor(cursor_of(item)), node=item) for item in page]
    return Connection(
        edges=edges,
        page_info=PageInfo(has_next_page=len(items) > first, end_cursor=edges[-1].cursor if edges else None),
    )
