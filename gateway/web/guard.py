"""What a request must get past before its operation runs: rate limits, persisted queries, allow-list.

Used by the GraphQL view for HTTP and by ``GatewayTransportWSHandler`` for WebSocket operations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLError
from strawberry.http.async_base_view import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import Operation
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage

from gateway.core.auth import Principal, Role
from gateway.features.guard import RATE_LIMITED, Refusal, sha256_hex
from gateway.services import Services
from gateway.web.broadcast import NextFrames
from resolvers.broadcast import OPERATION_WRITER

log = logging.getLogger("gateway.guard")

PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
PERSISTED_QUERY_NOT_IN_LIST = "PERSISTED_QUERY_NOT_IN_LIST"
PERSISTED_QUERY_HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"
PERSISTED_QUERY_INVALID = "PERSISTED_QUERY_INVALID"
TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
APQ_MAX_BYTES = 16 * 1024  # larger documents run, but are not kept as APQ registrations
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def error(message: str, code: str, **details: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **details})


def rate_limited(refusal: Refusal) -> GraphQLError:
    return error(refusal.message, RATE_LIMITED, retryAfter=refusal.retry_after)


def caller_kind(principal: Principal | None) -> str:
    return "anonymous" if principal is None else principal.role.value


def rate_key(principal: Principal | None, address: str) -> tuple[str, str]:
    """(caller kind, who is counted): the member, the partner, the token's subject, else the address."""
    if principal is None:
        return "anonymous", address
    return principal.role.value, principal.subject


class PersistedQuery:
    """The outcome of reading ``extensions.persistedQuery``: the query to run, or an error."""

    def __init__(self, query: str | None, register: str | None = None, error: GraphQLError | None = None) -> None:
        self.query = query
        self.register = register  # a hash to register once the operation ran without request errors
        self.error = error


async def resolve_persisted(
    services: Services, query: str | None, extensions: dict[str, Any] | None, principal: Principal | None
) -> PersistedQuery:
    """Apollo's automatic persisted queries, and the allow-list for the caller kinds that need it."""
    persisted = (extensions or {}).get("persistedQuery")
    restricted = caller_kind(principal) in services.settings.persisted_only_kinds
    if persisted is None:
        if restricted and query is not None:
            found = await services.persisted_queries.find(sha256_hex(query))
            if found is None or not found[1]:
                return PersistedQuery(None, error=_not_in_list())
        return PersistedQuery(query)
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        return PersistedQuery(None, error=error("Unsupported persisted query version", PERSISTED_QUERY_INVALID))
    sha = persisted.get("sha256Hash")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        return PersistedQuery(None, error=error("sha256Hash must be 64 hex digits", PERSISTED_QUERY_INVALID))
    if query is not None and sha256_hex(query) != sha:
        return PersistedQuery(None, error=error("provided sha does not match query", PERSISTED_QUERY_HASH_MISMATCH))
    found = await services.persisted_queries.find(sha)
    if restricted and (found is None or not found[1]):
        return PersistedQuery(None, error=_not_in_list())
    if query is None:
        if found is None:
            # Apollo clients look for this message and then send the query with its hash.
            return PersistedQuery(None, error=error("PersistedQueryNotFound", PERSISTED_QUERY_NOT_FOUND))
        return PersistedQuery(found[0])
    cacheable = found is None and len(query.encode()) <= APQ_MAX_BYTES
    return PersistedQuery(query, register=sha if cacheable else None)


def _not_in_list() -> GraphQLError:
    return error("This caller may run registered operations only", PERSISTED_QUERY_NOT_IN_LIST)


class SubscriptionCounts:
    """Live subscriptions per member on this process (one instance per view)."""

    def __init__(self) -> None:
        self.by_member: Counter[str] = Counter()

    def take(self, member: str, limit: int) -> bool:
        if self.by_member[member] >= limit:
            return False
        self.by_member[member] += 1
        return True

    def give_back(self, member: str) -> None:
        self.by_member[member] -= 1
        if self.by_member[member] <= 0:
            del self.by_member[member]


class GatewayTransportWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """graphql-transport-ws with the gateway's guards.

    - connection_init never leaks an internal error's text: it closes with 1011 instead;
    - a connection whose token expires is closed with 4403 (``token expired``) at the expiry;
    - subscriptions: at most N per connection and N per member (TOO_MANY_SUBSCRIPTIONS);
    - each subscribe counts against the caller's rate limit; allow-listed callers run
      registered operations only.
    """

    expiry: asyncio.TimerHandle | None = None

    @property
    def services(self) -> Services:
        return self.view.services  # type: ignore[attr-defined, no-any-return]

    async def handle_connection_init(self, message: Any) -> None:
        try:
            await super().handle_connection_init(message)
        except Exception:
            log.exception("connection_init failed")
            await self.websocket.close(code=1011, reason="Internal server error")
            return
        principal = getattr(self.context, "principal", None)
        if self.connection_acknowledged and principal is not None and principal.expires_at is not None:
            delay = (principal.expires_at - datetime.now(UTC)).total_seconds()
            self.expiry = asyncio.get_running_loop().call_later(max(delay, 0), self._expire)

    def _expire(self) -> None:
        closer = getattr(self.context, "close_soon", None)
        if closer is not None:
            closer(4403, "Token expired")

    async def shutdown(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        await super().shutdown()

    async def run_operation(self, operation: Operation[Any, Any]) -> None:
        """Within the operation's own task, a broadcast subscription finds its frame writer."""
        OPERATION_WRITER.set(NextFrames(self, operation))
        await super().run_operation(operation)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if not self.connection_acknowledged or message["id"] in self.operations:
            await super().handle_subscribe(message)  # Strawberry closes with 4401 / 4409
            return
        principal: Principal | None = getattr(self.context, "principal", None)
        limits = self.services.settings.rate_limits
        refused = await self._refusal(message, principal, limits.subscriptions_per_connection)
        if refused is not None:
            await self.send_message({"id": message["id"], "type": "error", "payload": [refused.formatted]})
            return
        member = principal.subject if principal is not None and principal.role is Role.MEMBER else None
        counts: SubscriptionCounts = self.view.subscription_counts  # type: ignore[attr-defined]
        if member is not None and not counts.take(member, limits.subscriptions_per_member):
            refused = error(
                f"At most {limits.subscriptions_per_member} live subscriptions per member",
                TOO_MANY_SUBSCRIPTIONS,
                limit=limits.subscriptions_per_member,
            )
            await self.send_message({"id": message["id"], "type": "error", "payload": [refused.formatted]})
            return
        await super().handle_subscribe(message)
        operation = self.operations.get(message["id"])
        if member is not None:
            if operation is None or operation.task is None:
                counts.give_back(member)
            else:
                operation.task.add_done_callback(lambda _task: counts.give_back(member))

    async def _refusal(self, message: Any, principal: Principal | None, per_connection: int) -> GraphQLError | None:
        if len(self.operations) >= per_connection:
            return error(
                f"At most {per_connection} operations per connection", TOO_MANY_SUBSCRIPTIONS, limit=per_connection
            )
        address = self.context.request.client.host if self.context.request.client else "unknown"
        kind, subject = rate_key(principal, address)
        refusal = await self.services.rate_limits.hit(kind, subject)
        if refusal is not None:
            return rate_limited(refusal)
        payload = message.get("payload") or {}
        query = payload.get("query") if isinstance(payload, dict) else None
        persisted = await resolve_persisted(self.services, query if isinstance(query, str) else None, None, principal)
        return persisted.error


def client_address(request: Any) -> str:
    with contextlib.suppress(Exception):
        if request.client is not None:
            return str(request.client.host)
    return "unknown"
