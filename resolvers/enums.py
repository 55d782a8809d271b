"""GraphQL enums that mirror the domain's enums, so each set of values is written once."""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

import strawberry

E = TypeVar("E", bound=Enum)


def graphql_enum(source: type[Enum], name: str | None = None, description: str | None = None) -> type[Enum]:
    """A Strawberry enum with the members of ``source`` (a domain enum that stays free of GraphQL)."""
    mirrored = Enum(name or source.__name__, {member.name: member.value for member in source})  # type: ignore[misc]
    return strawberry.enum(mirrored, description=description)  # type: ignore[call-overload,no-any-return]


def to_domain(source: type[E], mirrored: Any) -> E:
    """The domain member behind a value of its ``graphql_enum`` mirror (as an argument arrives)."""
    return source(mirrored.value)
