"""Client operation documents checked against the schema and split per operation, for the allow-list."""

from __future__ import annotations

import json
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    OperationDefinitionNode,
    parse,
    print_ast,
    validate,
)

from resolvers.schema import schema


class DocumentError(ValueError):
    """A document that does not parse or validate against the schema."""


@dataclass(frozen=True)
class Operation:
    name: str | None
    text: str


def _check(text: str, where: str) -> DocumentNode:
    try:
        document = parse(text)
    except GraphQLError as exc:
        raise DocumentError(f"{where}: {exc.message}") from None
    errors = validate(schema._schema, document)
    if errors:
        raise DocumentError(f"{where}: " + "; ".join(error.message for error in errors))
    return document


def _fragments_used(node: object, fragments: dict[str, FragmentDefinitionNode], found: dict[str, None]) -> None:
    stack = [getattr(node, "selection_set", None)]
    while stack:
        selection_set = stack.pop()
        if selection_set is None:
            continue
        for selection in selection_set.selections:
            if isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in found and name in fragments:
                    found[name] = None
                    stack.append(fragments[name].selection_set)
            else:
                stack.append(getattr(selection, "selection_set", None))


def operations_in_graphql(text: str, where: str = "document") -> list[Operation]:
    """The texts a client may send: the file as written and, when it holds several operations,
    each operation printed with the fragments it uses. Every one must validate."""
    document = _check(text, where)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    first_name = operations[0].name.value if len(operations) == 1 and operations[0].name else None
    found = [Operation(first_name, text)]
    if len(operations) > 1:
        for operation in operations:
            used: dict[str, None] = {}
            _fragments_used(operation, fragments, used)
            single = DocumentNode(definitions=(operation, *(fragments[name] for name in used)))
            found.append(Operation(operation.name.value if operation.name else None, print_ast(single)))
    return found


def operations_in_manifest(text: str, where: str = "manifest") -> list[Operation]:
    """An Apollo persisted query manifest: ``{"operations": [{"id", "name", "body"}]}``."""
    from gateway.features.guard import sha256_hex

    try:
        manifest = json.loads(text)
        entries = manifest["operations"]
    except (ValueError, KeyError, TypeError):
        raise DocumentError(f"{where}: not a persisted query manifest (no 'operations' list)") from None
    found = []
    for index, entry in enumerate(entries):
        body = entry.get("body") if isinstance(entry, dict) else None
        if not isinstance(body, str):
            raise DocumentError(f"{where}: operation {index} has no body")
        if entry.get("id") not in (None, sha256_hex(body)):
            raise DocumentError(f"{where}: operation {index} id is not the SHA-256 of its body")
        _check(body, f"{where} operation {entry.get('name') or index}")
        found.append(Operation(entry.get("name"), body))
    return found
