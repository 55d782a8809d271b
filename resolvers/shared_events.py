"""Execute a subscription's selection once per event and query, not once per subscriber.

A broadcast event (one committed change) reaches many subscriptions that usually send the
same document with the same variables. Event types that derive from ``SharedEvent`` hold
only plain data (no resolvers that look at the caller), so the result of executing one
document over one event is the same for every subscriber: the executor computes it once
and reuses it. Anything else executes as usual.
"""

from __future__ import annotations

from typing import Any

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class SharedEvent:
    """Marker for event types whose rendering does not depend on the subscriber."""


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    def execute_operation(self, serially: bool | None = None) -> Any:
        root = self.root_value
        if not isinstance(root, SharedEvent) or self.operation.loc is None:
            return super().execute_operation(serially)
        key = (self.operation.loc.source.body, self.operation.name and self.operation.name.value, _frozen(self))
        results: dict[Any, Any] = root.__dict__.setdefault("_shared_results", {})
        if key in results:
            return results[key]
        result = super().execute_operation(serially)
        if not hasattr(result, "__await__") and not getattr(result, "errors", None):
            results[key] = result
        return result


def _frozen(executor: Any) -> str:
    values = executor.variable_values
    coerced = getattr(values, "coerced", values) or {}
    return repr(sorted(coerced.items()))
