"""Measure a parsed operation before anything runs: depth, aliases, root fields, directives, cost.

One pass over the document, linear in its size: each fragment is measured once and reused
(memoised), so a document that spreads a fragment that spreads another twice, and so on, costs
nothing extra to measure. (Strawberry's QueryDepthLimiter and MaxAliasesLimiter walk each
spread again; a 250-token document with 18 nested double spreads keeps them busy for seconds,
which is why the gateway measures with this walker instead and keeps Strawberry's
MaxTokensLimiter, which bounds the document while it is lexed.)

Cost counts the objects an operation may produce: every field with a selection set costs 1,
scalars cost 0, and a list multiplies what is below it: a connection by its ``first`` (the
argument, the variable, or the declared default), ``_entities`` by the number of
representations, ``edges``/``nodes`` of a connection by 1 (the connection already counted the
page), any other list of objects by ``default_list_size``.

A storefront sends the same few documents over and over, and the parser cache hands back the
same document object each time: a document that passed, with these limits and without reading
a variable (a ``first: $n`` is read from the variables), passes again, so that outcome is
remembered (bounded) and such a document is measured once per process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)

from gateway.core.hardening import OperationLimits

QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
TOO_MANY_ROOT_FIELDS = "TOO_MANY_ROOT_FIELDS"
TOO_MANY_DIRECTIVES = "TOO_MANY_DIRECTIVES"
PAGE_SIZE_TOO_LARGE = "PAGE_SIZE_TOO_LARGE"
INTROSPECTION_DISABLED = "INTROSPECTION_DISABLED"
INTROSPECTION_FIELDS = frozenset({"__schema", "__type", "_service"})
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1  # outside, an Int argument fails validation anyway
REPORTED_MAX = 2**53  # numbers in extensions stay exact in every JSON client


@dataclass
class Size:
    """What a selection set adds up to, relative to where it stands."""

    depth: int = 0
    cost: int = 0

    def add(self, other: Size) -> None:
        self.depth = max(self.depth, other.depth)
        self.cost += other.cost


@dataclass
class Measure:
    depth: int = 0
    cost: int = 0
    aliases: int = 0
    directives: int = 0
    root_fields: int = 0
    introspection: list[str] = field(default_factory=list)
    oversized_pages: list[tuple[str, int]] = field(default_factory=list)
    read_variables: bool = False  # the outcome depends on the request's variables


class _Walker:
    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any], limits: OperationLimits
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.limits = limits
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.memo: dict[str, Size] = {}
        self.oversized: list[tuple[str, int]] = []
        self.read_variables = False

    def selection_set(self, parent: Any, selection_set: SelectionSetNode | None, visiting: frozenset[str]) -> Size:
        total = Size()
        if selection_set is None:
            return total
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total.add(self.field(parent, selection, visiting))
            elif isinstance(selection, InlineFragmentNode):
                condition = (
                    self.schema.get_type(selection.type_condition.name.value) if selection.type_condition else None
                )
                total.add(self.selection_set(condition or parent, selection.selection_set, visiting))
            elif isinstance(selection, FragmentSpreadNode):
                total.add(self.spread(selection.name.value, visiting))
        return total

    def spread(self, name: str, visiting: frozenset[str]) -> Size:
        if name in visiting or name not in self.fragments:
            return Size()  # a cycle or an unknown fragment: validation reports it
        if name not in self.memo:
            fragment = self.fragments[name]
            condition = self.schema.get_type(fragment.type_condition.name.value)
            self.memo[name] = Size()  # guards against a cycle reached through another fragment
            self.memo[name] = self.selection_set(condition, fragment.selection_set, visiting | {name})
        return self.memo[name]

    def field(self, parent: Any, node: FieldNode, visiting: frozenset[str]) -> Size:
        name = node.name.value
        size = Size()
        if name.startswith("__"):
            return size  # __typename, and introspection (graphql-core bounds its depth)
        definition = parent.fields.get(name) if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) else None
        if definition is None:
            return size  # unknown field: validation reports it
        child_type = get_named_type(definition.type)
        below = self.selection_set(child_type, node.selection_set, visiting)
        size.depth = 1 + below.depth
        if node.selection_set is not None:
            size.cost = 1 + self.multiplier(parent, definition, node) * below.cost
        return size

    def multiplier(self, parent: Any, definition: Any, node: FieldNode) -> int:
        if "first" in definition.args:
            first = self.argument(node, "first", definition.args["first"].default_value)
            if isinstance(first, int) and not isinstance(first, bool) and INT32_MIN <= first <= INT32_MAX:
                if first > self.limits.max_page_size:
                    self.oversized.append((node.name.value, first))
                return max(first, 0)
            return self.limits.default_list_size
        if not _is_list(definition.type):
            return 1
        if node.name.value in ("edges", "nodes") and parent.name.endswith("Connection"):
            return 1
        if "representations" in definition.args:
            representations = self.argument(node, "representations", None)
            if isinstance(representations, list):
                return len(representations)
        return self.limits.default_list_size

    def argument(self, node: FieldNode, name: str, default: Any) -> Any:
        for argument in node.arguments or ():
            if argument.name.value != name:
                continue
            value = argument.value
            if isinstance(value, VariableNode):
                self.read_variables = True
                return self.variables.get(value.name.value, default)
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, ListValueNode):
                return list(value.values)
            return default
        return default


def _is_list(type_: Any) -> bool:
    while isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def _root_fields(
    walker: _Walker,
    selection_set: SelectionSetNode,
    visiting: frozenset[str],
    memo: dict[str, frozenset[tuple[str, str]]],
) -> frozenset[tuple[str, str]]:
    """(response key, field name) of the top-level fields; spreads of one fragment merge, as in execution."""
    found: set[tuple[str, str]] = set()
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            found.add(((selection.alias or selection.name).value, selection.name.value))
        elif isinstance(selection, InlineFragmentNode):
            found |= _root_fields(walker, selection.selection_set, visiting, memo)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in visiting or name not in walker.fragments:
                continue
            if name not in memo:
                memo[name] = frozenset()
                memo[name] = _root_fields(walker, walker.fragments[name].selection_set, visiting | {name}, memo)
            found |= memo[name]
    return frozenset(found)


def _count_aliases_and_directives(document: DocumentNode) -> tuple[int, int]:
    """Each alias and each directive written in the document, counted once where it is written."""
    aliases = directives = 0
    stack: list[Any] = list(document.definitions)
    while stack:
        node = stack.pop()
        directives += len(getattr(node, "directives", None) or ())
        if isinstance(node, FieldNode) and node.alias is not None:
            aliases += 1
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            stack.extend(selection_set.selections)
    return aliases, directives


def measure(
    schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any] | None, limits: OperationLimits
) -> Measure:
    """The document's totals: the largest depth, cost and root field count of its operations."""
    walker = _Walker(schema, document, variables or {}, limits)
    result = Measure()
    result.aliases, result.directives = _count_aliases_and_directives(document)
    roots = {"query": schema.query_type, "mutation": schema.mutation_type, "subscription": schema.subscription_type}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            root = roots.get(definition.operation.value)
            size = walker.selection_set(root, definition.selection_set, frozenset())
            result.depth = max(result.depth, size.depth)
            result.cost = max(result.cost, size.cost)
            fields = _root_fields(walker, definition.selection_set, frozenset(), {})
            result.root_fields = max(result.root_fields, len(fields))
            result.introspection.extend(name for _, name in fields if name in INTROSPECTION_FIELDS)
    result.oversized_pages = walker.oversized
    result.read_variables = walker.read_variables
    return result


def _error(message: str, code: str, **details: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **details})


def _over(measured: int, limit: int, what: str, code: str, key: str) -> list[GraphQLError]:
    """One error when ``measured`` passes ``limit`` (``what`` says it, with ``{n}``), else none."""
    if measured <= limit:
        return []
    return [_error(f"{what.format(n=measured)}; the limit is {limit}", code, **{key: measured, "limit": limit})]


# (id(schema), id(document), limits, introspection allowed) -> the document (keeps the id valid)
_PASSED: dict[tuple[int, int, OperationLimits, frozenset[str]], DocumentNode] = {}
PASSED_LIMIT = 2048


def check(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any] | None,
    limits: OperationLimits,
    *,
    introspection_allowed: frozenset[str] = INTROSPECTION_FIELDS,
) -> list[GraphQLError]:
    """The limits the document breaks, one error per limit, each with a stable code."""
    key = (id(schema), id(document), limits, introspection_allowed)
    if _PASSED.get(key) is document:
        return []
    errors = _check(schema, document, variables, limits, introspection_allowed)
    if errors is None:
        if len(_PASSED) >= PASSED_LIMIT:
            _PASSED.clear()
        _PASSED[key] = document
    return errors or []


def _check(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any] | None,
    limits: OperationLimits,
    introspection_allowed: frozenset[str],
) -> list[GraphQLError] | None:
    """The errors; None when there are none whatever the variables (the document always passes)."""
    found = measure(schema, document, variables, limits)
    found.cost = min(found.cost, REPORTED_MAX)  # first: 2147483647 nested three times is 2^93
    errors: list[GraphQLError] = []
    if set(found.introspection) - introspection_allowed:
        errors.append(_error("Introspection is disabled on this gateway", INTROSPECTION_DISABLED))
    errors += _over(found.depth, limits.max_depth, "Operation is {n} levels deep", QUERY_TOO_DEEP, "depth")
    errors += _over(found.aliases, limits.max_aliases, "{n} aliases", TOO_MANY_ALIASES, "aliases")
    fields, max_fields = found.root_fields, limits.max_root_fields
    errors += _over(fields, max_fields, "{n} top-level fields", TOO_MANY_ROOT_FIELDS, "rootFields")
    errors += _over(found.directives, limits.max_directives, "{n} directives", TOO_MANY_DIRECTIVES, "directives")
    if found.oversized_pages:
        name, first = found.oversized_pages[0]
        errors.append(
            _error(
                f"{name}(first: {first}) asks for more than {limits.max_page_size} items",
                PAGE_SIZE_TOO_LARGE,
                field=name,
                first=first,
                limit=limits.max_page_size,
            )
        )
    errors += _over(found.cost, limits.max_cost, "Operation may produce {n} objects", QUERY_TOO_COMPLEX, "cost")
    return None if not errors and not found.read_variables else errors
