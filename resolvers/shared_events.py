"""Execute a subscription's selection once per event and query, not once per subscriber.

A broadcast event (one committed change) reaches many subscriptions that usually send the
same document with the same variables. Event types that derive from ``SharedEvent`` hold
only plain data (no resolvers that look at the caller), so the result of executing one
document over one event is the same for every subscriber who may see the same things: the
executor computes it once per audience and reuses it. Anything else executes as usual.

The audience is part of the key, so a field that one day looks at the caller (an admin-only
field, a member's own data) cannot hand one caller's result to another: anonymous callers
share, admins share, dashboards share, and a member or partner shares only with itself.
"""

from __future__ import annotations

from typing import Any

from gateway.core.auth import Principal
from gateway.core.permissions import ROLE_PERMISSIONS
from resolvers.executor import GatewayExecutor


class SharedEvent:
    """Marker for event types whose rendering does not depend on the subscriber."""


class SharedEventExecutor(GatewayExecutor):
    def execute_operation(self, serially: bool | None = None) -> Any:
        root = self.root_value
        if not isinstance(root, SharedEvent) or self.operation.loc is None:
            return super().execute_operation(serially)
        key = (
            self.operation.loc.source.body,
            self.operation.name and self.operation.name.value,
            _frozen(self),
            audience(getattr(self.context_value, "principal", None)),
        )
        results: dict[Any, Any] = root.__dict__.setdefault("_shared_results", {})
        if key in results:
            return results[key]
        result = super().execute_operation(serially)
        if not hasattr(result, "__await__") and not getattr(result, "errors", None):
            results[key] = result
        return result


def audience(principal: Principal | None) -> tuple[str, ...]:
    """What a subscriber's visibility depends on: the role, and for roles scoped to their own
    data (member, partner) the subject too."""
    if principal is None:
        return ("anonymous",)
    if principal.role in ROLE_PERMISSIONS:  # staff and the dashboard: what they see depends on the role alone
        return (principal.role.value,)
    return (principal.role.value, principal.subject)


def _frozen(executor: Any) -> str:
    values = executor.variable_values
    coerced = getattr(values, "coerced", values) or {}
    return repr(sorted(coerced.items()))
