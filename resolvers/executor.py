"""graphql-core's executor, made cheaper for the gateway's answers in two ways.

**Freed by reference counting.** graphql-core's executor refers to itself (the resolve-info
helpers it hands to resolvers are its own bound methods), so each request's executor, and with
it everything the request touched (context, loaders, documents read, the answer), was garbage
only the cyclic collector could free. At a few hundred requests a second that was about a
fifth of the gateway's CPU, mostly full collections walking the whole heap (schema included).
The helpers here reach the executor through a weak reference, so a finished request is freed
at once.

**Plain data fields completed in one pass.** graphql-core completes every field the same way,
whatever it is: a ``Path``, a resolve-info object, the field's resolver (for a plain Strawberry
field, two calls ending in ``getattr``), awaitable checks and a walk through ``complete_value``.
A page of 20 gifts is about 300 such fields (a tenth of the storefront page's CPU).

A selection whose fields are all *plain*, here, is completed by a plan: one ``getattr`` and
the type's own ``coerce_output_value`` per field, nested plans for nested objects and lists.
Plans are made once per document and selection and shared by the requests that send the same
(cached, so identical) document, unless an ``@skip``/``@include`` there takes a variable: then
the fields collected depend on the request, and plans are made once per request and selection
(the same memo graphql-core keeps for the collected sub-fields).

A field is plain when Strawberry resolves it with its basic resolver (no resolver function, no
permission or field extension: ``default_resolver(source, python_name)``), it takes no
arguments, its type is a scalar, an enum, an object type without ``is_type_of`` or a list of
those (never an interface or union), and it carries no directive but ``@skip`` and
``@include``, which the collection already applied. ``__typename`` is plain too.

The answer is the one graphql-core gives, by construction: the same fields in the same order,
the same values coerced by the same functions. Anything out of the ordinary (a missing value for
a non-null field, an exception or an awaitable where a value should be, a value that does not
coerce, a list that is not a list or tuple) abandons the fast path for that object, and
graphql-core completes it again from the start, so errors, paths and nulls are exactly its own.
Completing again is safe because plain fields only read attributes.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from graphql import (
    FragmentDefinitionNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfoHelpers,
    GraphQLScalarType,
    OperationDefinitionNode,
    VariableNode,
)
from graphql.pyutils import Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

# Values that are never awaitable, never an exception and coerce without surprises.
_PLAIN_VALUES = frozenset({str, int, float, bool})
_SKIP_INCLUDE = frozenset({"skip", "include"})
_STRAWBERRY_GET_RESULT = StrawberryField.get_result

Complete = Callable[[Any], Any]

# Plans shared between requests: (id(operation), object type, ids of the selection's field nodes,
# is_awaitable) -> (what keeps those ids valid: the operation and the document's fragments; plan).
# Bounded: documents come from the bounded parser cache, but a client can send many.
_SHARED_PLANS: dict[tuple[Any, ...], tuple[Any, Complete | None]] = {}
_FIXED_SELECTIONS: dict[int, tuple[OperationDefinitionNode, bool]] = {}
SHARED_PLANS_LIMIT = 4096


class _Abandon(Exception):  # noqa: N818 - a signal, not an error
    """The fast path meets something graphql-core must handle itself."""


class GatewayExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor without a reference cycle, completing plain fields in one pass (module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.async_helpers = _weak_helpers(self)
        # This request's plans when they cannot be shared:
        # (object type, id(field details list)) -> (the list, kept alive; its plan or None)
        self._plain_plans: dict[tuple[Any, ...], tuple[Any, Complete | None]] = {}
        self._shared: bool | None = None  # whether this operation's plans are shared (decided on first use)

    def complete_object_value(
        self,
        return_type: GraphQLObjectType,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        if position_context is None and not _has_middleware(self.middleware_manager):
            plan = self._object_plan(return_type, field_details_list)
            if plan is not None:
                try:
                    return plan(result)
                except Exception:  # noqa: BLE001 - graphql-core completes it again and reports what it finds
                    pass
        return super().complete_object_value(return_type, field_details_list, info, path, result, position_context)

    def _object_plan(self, object_type: GraphQLObjectType, field_details_list: Any) -> Complete | None:
        """The completion of ``object_type`` objects for this selection; None if it is not all plain."""
        if self._shared is None:
            self._shared = _fixed_selection(self.operation, self.fragment_definitions)
        plans: dict[tuple[Any, ...], tuple[Any, Complete | None]]
        if self._shared:
            nodes = tuple(id(details.node) for details in field_details_list)
            key: tuple[Any, ...] = (id(self.operation), object_type, nodes, self.is_awaitable)
            keep: Any = (self.operation, self.fragment_definitions)
            plans = _SHARED_PLANS
            if len(plans) >= SHARED_PLANS_LIMIT:
                plans.clear()
        else:
            key, keep, plans = (object_type, id(field_details_list)), field_details_list, self._plain_plans
        cached = plans.get(key)
        if cached is not None:
            return cached[1]
        plans[key] = (keep, None)  # a selection that reaches itself is not plain
        try:
            plan = self._make_object_plan(object_type, field_details_list)
        except Exception:
            del plans[key]
            raise
        plans[key] = (keep, plan)
        return plan

    def _make_object_plan(self, object_type: GraphQLObjectType, field_details_list: Any) -> Complete | None:
        if object_type.is_type_of is not None:
            return None
        grouped_field_set, new_defer_usages, *_ = self.collect_subfields(object_type, field_details_list)
        if new_defer_usages:
            return None
        fields: list[tuple[str, Any, str, Complete]] = []
        for response_name, details in grouped_field_set.items():
            node = details[0].node
            if any(d.defer_usage is not None or d.fragment_variable_values is not None for d in details) or any(
                directive.name.value not in _SKIP_INCLUDE for d in details for directive in d.node.directives or ()
            ):
                return None
            name = node.name.value
            if name == "__typename":
                fields.append((response_name, None, object_type.name, _typename))
                continue
            field_def = self.schema.get_field(object_type, name)
            if field_def is None or field_def.args or node.arguments:
                return None
            resolver = _plain_resolver(field_def)
            if resolver is None:
                return None
            complete = self._value_plan(field_def.type, details)
            if complete is None:
                return None
            fields.append((response_name, resolver[0], resolver[1], complete))
        return _object_completer(tuple(fields), self.is_awaitable)

    def _value_plan(self, type_: Any, details: Any) -> Complete | None:
        """The completion of one value of ``type_`` (``complete_value``'s cases, minus the unusual)."""
        if isinstance(type_, GraphQLNonNull):
            inner = self._value_plan(type_.of_type, details)
            return None if inner is None else _non_null(inner)
        if isinstance(type_, GraphQLList):
            item = self._value_plan(type_.of_type, details)
            return None if item is None else _list_of(item, self.is_awaitable)
        if isinstance(type_, GraphQLScalarType | GraphQLEnumType):
            return _leaf(type_.coerce_output_value, self.is_awaitable)
        if isinstance(type_, GraphQLObjectType):
            plan = self._object_plan(type_, details)
            return None if plan is None else _nullable_object(plan)
        return None  # interfaces and unions: graphql-core resolves the runtime type


def _fixed_selection(operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]) -> bool:
    """Whether the fields this operation collects never depend on its variables (no ``@skip`` or
    ``@include`` whose condition is a variable): then its plans can serve every request."""
    cached = _FIXED_SELECTIONS.get(id(operation))
    if cached is not None and cached[0] is operation:
        return cached[1]
    fixed = True
    stack: list[Any] = [operation, *fragments.values()]
    while stack and fixed:
        node = stack.pop()
        for directive in getattr(node, "directives", None) or ():
            if any(isinstance(argument.value, VariableNode) for argument in directive.arguments or ()):
                fixed = False
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            stack.extend(selection_set.selections)
    if len(_FIXED_SELECTIONS) >= SHARED_PLANS_LIMIT:
        _FIXED_SELECTIONS.clear()
    _FIXED_SELECTIONS[id(operation)] = (operation, fixed)
    return fixed


def _weak_helpers(executor: GatewayExecutor) -> GraphQLResolveInfoHelpers:
    """The executor's resolve-info helpers, holding it weakly (a resolver runs while it is alive)."""
    ref = weakref.ref(executor)

    def gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
        return _alive(ref).gather_async_work(values)

    def track(values: Sequence[Any]) -> None:
        _alive(ref).track_async_work(values)

    return GraphQLResolveInfoHelpers(gather=gather, track=track)


def _alive(ref: weakref.ref[GatewayExecutor]) -> GatewayExecutor:
    executor = ref()
    if executor is None:
        raise RuntimeError("the operation that gave these helpers has finished")
    return executor


def _has_middleware(manager: Any) -> bool:
    """Strawberry passes a manager on every request; it wraps fields only for extensions with ``resolve``."""
    return manager is not None and bool(manager.middlewares)


def _plain_resolver(field_def: Any) -> tuple[Any, str] | None:
    """(default resolver, attribute name) when the field is Strawberry's basic field, else None."""
    resolve = field_def.resolve
    strawberry_field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if (
        resolve is None
        or getattr(resolve, "__name__", None) != "_get_basic_result"
        or not isinstance(strawberry_field, StrawberryField)
        or not strawberry_field.is_basic_field
        or type(strawberry_field).get_result is not _STRAWBERRY_GET_RESULT
        or not isinstance(strawberry_field.python_name, str)
    ):
        return None
    return strawberry_field.default_resolver, strawberry_field.python_name


def _typename(value: Any) -> Any:
    raise AssertionError("__typename is answered from the plan, never completed")


def _object_completer(fields: tuple[tuple[str, Any, str, Complete], ...], is_awaitable: Any) -> Complete:
    def complete(source: Any) -> dict[str, Any]:
        if isinstance(source, Exception) or is_awaitable(source):
            raise _Abandon
        result = {}
        for response_name, default_resolver, attribute, complete_value in fields:
            if default_resolver is None:  # __typename
                result[response_name] = attribute
                continue
            value = getattr(source, attribute) if default_resolver is getattr else default_resolver(source, attribute)
            result[response_name] = complete_value(value)
        return result

    return complete


def _non_null(inner: Complete) -> Complete:
    def complete(value: Any) -> Any:
        completed = inner(value)
        if completed is None:
            raise _Abandon
        return completed

    return complete


def _nullable_object(plan: Complete) -> Complete:
    def complete(value: Any) -> Any:
        if value is None:
            return None
        if value is Undefined:
            raise _Abandon
        return plan(value)

    return complete


def _list_of(item: Complete, is_awaitable: Any) -> Complete:
    def complete(value: Any) -> Any:
        if value is None:
            return None
        if type(value) is not list and type(value) is not tuple:
            raise _Abandon  # any other iterable (a generator may not be read twice): graphql-core's way
        completed = []
        for element in value:
            if type(element) not in _PLAIN_VALUES and (isinstance(element, Exception) or is_awaitable(element)):
                raise _Abandon
            completed.append(item(element))
        return completed

    return complete


def _leaf(coerce: Callable[[Any], Any], is_awaitable: Any) -> Complete:
    def complete(value: Any) -> Any:
        if value is None:
            return None
        if type(value) not in _PLAIN_VALUES and (
            value is Undefined or isinstance(value, Exception) or is_awaitable(value)
        ):
            raise _Abandon
        coerced = coerce(value)
        if coerced is None or coerced is Undefined:
            raise _Abandon
        return coerced

    return complete
