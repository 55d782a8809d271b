"""Every error code the gateway raises is listed, with its meaning, in ``gateway.core.codes.CODES``."""

from __future__ import annotations

import ast
from pathlib import Path

from gateway.core.codes import CODES
from gateway.domain.catalog import Reason

ROOT = Path(__file__).resolve().parents[2]


ERROR_NAMES = ("Error", "NotFound", "Forbidden", "BadInput", "Unauthenticated", "Conflict", "Points", "Unavailable")


def _name(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def _is_error(name: str) -> bool:
    return name.endswith(ERROR_NAMES)


def _code(value: ast.expr | None) -> str | None:
    if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value.isupper():
        return value.value
    return None


def raised_codes() -> dict[str, str]:
    """``SomeError(..., code="X")`` calls and ``code = "X"`` in error classes, with where they stand."""
    found: dict[str, str] = {}
    for package in ("gateway", "resolvers", "dataloaders"):
        for path in (ROOT / package).rglob("*.py"):
            where = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and _is_error(_name(node.func)):
                    for keyword in node.keywords:
                        if keyword.arg == "code" and (code := _code(keyword.value)):
                            found[code] = f"{where}:{node.lineno}"
                elif isinstance(node, ast.ClassDef) and (
                    _is_error(node.name) or any(_is_error(_name(base)) for base in node.bases)
                ):
                    for statement in node.body:
                        if (
                            isinstance(statement, ast.Assign)
                            and any(isinstance(t, ast.Name) and t.id == "code" for t in statement.targets)
                            and (code := _code(statement.value))
                        ):
                            found[code] = f"{where}:{statement.lineno}"
    return found


def test_every_raised_code_is_in_the_table() -> None:
    missing = {code: where for code, where in raised_codes().items() if code not in CODES}
    assert not missing, f"add these to gateway.core.errors.CODES with their meaning: {missing}"


def test_redemption_refusal_reasons_are_codes() -> None:
    assert {reason.value for reason in Reason} <= CODES.keys()


def test_every_code_has_a_meaning() -> None:
    assert all(meaning.strip() for meaning in CODES.values())
