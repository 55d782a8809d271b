"""The layout's rule that import-linter cannot see: only ``gateway/store/`` names a MongoDB collection.

A collection is reached through a ``Database`` (``db["gifts"]``, ``db[PARTNERS]``, ``self.db.members``).
Outside the store, code calls a repository function in ``gateway/store/`` instead; none is left
anywhere else, and a new raw query anywhere fails this test.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("gateway", "resolvers", "dataloaders")
COLLECTION_PROPERTIES = {"members", "ledger", "lots", "idempotency", "program"}


def _names_database(node: ast.expr) -> bool:
    """``db``, ``self.db``, ``services.db``, ``tx.db``..."""
    return (isinstance(node, ast.Name) and node.id == "db") or (isinstance(node, ast.Attribute) and node.attr == "db")


def _names_collection(node: ast.AST) -> bool:
    if isinstance(node, ast.Subscript):
        return _names_database(node.value)
    if isinstance(node, ast.Attribute):
        return node.attr in COLLECTION_PROPERTIES and _names_database(node.value)
    return False


def collection_accesses(source: str) -> int:
    return sum(1 for node in ast.walk(ast.parse(source)) if _names_collection(node))


def offenders() -> Counter[str]:
    found: Counter[str] = Counter()
    for package in CHECKED:
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith("gateway/store/"):
                continue
            count = collection_accesses(path.read_text())
            if count:
                found[relative] = count
    return found


def test_the_detector_sees_every_way_of_naming_a_collection() -> None:
    source = 'db["gifts"].find()\nself.db[PARTNERS]\nservices.db.members\ntx.db.ledger\nprogram.members\n'
    assert collection_accesses(source) == 4


def test_only_the_store_names_collections() -> None:
    found = offenders()
    assert not found, f"raw collection access outside gateway/store/ (write a repository function there): {dict(found)}"
