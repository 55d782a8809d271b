"""The federation entry points (``_entities``, ``_service``) are for the router only.

- With ``LOYALTY_FEDERATION_ROUTER_ONLY`` on (the default in production) an operation that
  selects ``_entities`` or ``_service`` needs the header ``X-Router-Secret`` equal to
  ``LOYALTY_ROUTER_SECRET``; without it the answer is ``FORBIDDEN`` before anything runs.
  (docs/federation.md shows the Apollo Router and Apollo Gateway configuration.)
- ``_entities`` takes at most ``LOYALTY_MAX_ENTITIES_PER_REQUEST`` representations; each
  must be an object with a known ``__typename`` and string key fields, else that
  representation is ``BAD_USER_INPUT`` (the others still resolve).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension

from gateway.core.errors import BadInput
from gateway.core.settings import Settings

ROUTER_HEADER = "x-router-secret"
ENTRY_POINTS = {"_entities", "_service"}


def router_only(settings: Settings) -> bool:
    return settings.federation_router_only_effective


def is_router(settings: Settings, headers: Any) -> bool:
    secret = settings.router_secret.get_secret_value() if settings.router_secret else ""
    sent = headers.get(ROUTER_HEADER, "") if headers is not None else ""
    return bool(secret) and hmac.compare_digest(sent.encode(), secret.encode())


def _root_fields(selection_set: SelectionSetNode, fragments: dict[str, Any], seen: set[str]) -> Iterator[str]:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection.name.value
        elif isinstance(selection, InlineFragmentNode):
            yield from _root_fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            seen.add(selection.name.value)
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                yield from _root_fields(fragment.selection_set, fragments, seen)


def selects_entry_point(document: Any) -> bool:
    fragments = {d.name.value: d for d in document.definitions if d.kind == "fragment_definition"}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and ENTRY_POINTS.intersection(
            _root_fields(definition.selection_set, fragments, set())
        ):
            return True
    return False


class RouterOnlyFederation(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        request_context = context.context
        services = getattr(request_context, "services", None)
        if services is not None and context.graphql_document is not None and context.result is None:
            settings: Settings = services.settings
            if router_only(settings) and selects_entry_point(context.graphql_document):
                request = getattr(request_context, "request", None)
                if not is_router(settings, getattr(request, "headers", None)):
                    context.result = ExecutionResult(
                        data=None,
                        errors=[
                            GraphQLError(
                                "_entities and _service are for the federation router only",
                                extensions={"code": "FORBIDDEN"},
                            )
                        ],
                    )
        yield


def check_representations(info: Any, representations: list[Any], type_map: dict[str, Any]) -> list[Any]:
    """Each representation, or a BadInput in its place; BadInput for the whole list when too many."""
    limit = info.context.services.settings.max_entities_per_request
    if len(representations) > limit:
        raise BadInput(f"_entities takes at most {limit} representations per request", field="representations")
    checked: list[Any] = []
    for index, representation in enumerate(representations):
        field = f"representations[{index}]"
        if not isinstance(representation, dict):
            checked.append(BadInput(f"{field} must be an object", field=field))
            continue
        type_name = representation.get("__typename")
        if not isinstance(type_name, str) or type_name not in type_map:
            checked.append(BadInput(f"{field} needs the __typename of an entity", field=field))
            continue
        keys = {k: v for k, v in representation.items() if k != "__typename"}
        if not keys or not all(isinstance(v, str) for v in keys.values()):
            checked.append(BadInput(f"{field} key fields must be strings", field=field))
            continue
        checked.append(dict(representation))
    return checked
