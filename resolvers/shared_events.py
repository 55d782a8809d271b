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
        key = self.shared_key() if isinstance(root, SharedEvent) else None
        if key is None:
            return super().execute_operation(serially)
        results: dict[Any, Any] = root.__dict__.setdefault("_shared_results", {})
        if key in results:
            return results[key]
        result = super().execute_operation(serially)
        if not hasattr(result, "__await__") and not getattr(result, "errors", None):
            results[key] = result
        return result

    def shared_key(self) -> tuple[Any, ...] | None:
        """Whose results of this operation are the same: (document, operation, variables,
        audience). Kept on the executor, so an event's executor (a copy of the subscription's)
        inherits it once the subscription's own computed it (broadcast delivery does, at bind)."""
        if "_shared_key" not in self.__dict__:
            loc = self.operation.loc
            self._shared_key = (
                None
                if loc is None
                else (
                    loc.source.body,
                    self.operation.name and self.operation.name.value,
                    _frozen(self),
                    audience(getattr(self.context_value, "principal", None)),
                )
            )
        return self._shared_key

    def cancellable_iterable(self, iterable: Any) -> Any:
        """A subscription's source stream: one that renders events itself (resolvers/broadcast.py)
        gets this executor, the one that runs the subscription's document over each event."""
        bind = getattr(iterable, "bind_executor", None)
        if bind is not None:
            bind(self)
        return super().cancellable_iterable(iterable)


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
