"""What changes between two versions of the program configuration, field by field.

Plain data in (the program as JSON-like dicts and lists), a list of changes out, so an operator
sees exactly what an import would do before it does it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "(none)"})()


@dataclass(frozen=True)
class Change:
    path: str
    old: Any
    new: Any

    @property
    def verb(self) -> str:
        if self.old is MISSING:
            return "add"
        if self.new is MISSING:
            return "remove"
        return "change"

    def __str__(self) -> str:
        if self.verb == "add":
            return f"+ {self.path}: {self.new!r}"
        if self.verb == "remove":
            return f"- {self.path}: {self.old!r}"
        return f"~ {self.path}: {self.old!r} -> {self.new!r}"


def diff(old: Any, new: Any, path: str = "") -> list[Change]:
    """Changes from ``old`` to ``new``; dicts by key, lists by position, anything else by value."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[Change] = []
        for key in sorted(set(old) | set(new), key=str):
            child = f"{path}.{key}" if path else str(key)
            changes.extend(diff(old.get(key, MISSING), new.get(key, MISSING), child))
        return changes
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        changes = []
        for index in range(max(len(old), len(new))):
            changes.extend(
                diff(
                    old[index] if index < len(old) else MISSING,
                    new[index] if index < len(new) else MISSING,
                    f"{path}[{index}]",
                )
            )
        return changes
    if old is MISSING and isinstance(new, dict | list | tuple):
        return diff({} if isinstance(new, dict) else [], new, path) or [Change(path, old, new)]
    if new is MISSING and isinstance(old, dict | list | tuple):
        return diff(old, {} if isinstance(old, dict) else [], path) or [Change(path, old, new)]
    return [] if old == new else [Change(path, old, new)]
