"""Strawberry's ASGI view, fitted to the GraphQL over HTTP specification and our auth."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson
from cross_web import HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from gateway.core.errors import UNAVAILABLE_MESSAGE, DomainError, ServiceUnavailable
from gateway.services import Services
from gateway.store.mongo import is_unavailable
from gateway.web.authenticate import authenticate
from gateway.web.guard import (
    GatewayTransportWSHandler,
    SubscriptionCounts,
    client_address,
    rate_key,
    rate_limited,
    resolve_persisted,
)
from resolvers.context import Context

log = logging.getLogger(__name__)

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
RETRY_AFTER_SECONDS = 2


def negotiate(accept: str | None) -> str:
    """Prefer application/graphql-response+json when the client accepts it.

    Without an Accept header the spec says to answer as application/json,
    which is also what older clients understand.
    """
    if not accept:
        return JSON
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media == GRAPHQL_RESPONSE:
            return GRAPHQL_RESPONSE
        if media in (JSON, "application/*", "*/*"):
            return JSON
    return JSON


def is_request_error(result: ExecutionResult) -> bool:
    """Parse and validation errors happen before execution: they carry no path."""
    errors = result.errors or []
    return bool(errors) and result.data is None and all(e.path is None for e in errors)


@dataclass
class SocketContext(Context):
    """The context of one WebSocket connection, shared by all its subscriptions."""

    connection_params: dict[str, Any] = field(default_factory=dict)
    closing: asyncio.Task[None] | None = None
    fixed_instant = False

    def close_soon(self, code: int, reason: str) -> asyncio.Task[None]:
        """Send a close frame without making the caller (the hub) wait for the client."""
        if self.closing is None:
            self.closing = asyncio.create_task(self._close(code, reason))
        return self.closing

    async def _close(self, code: int, reason: str) -> None:
        websocket: WebSocket = self.request
        with contextlib.suppress(Exception):
            await websocket.close(code=code, reason=reason)


def _credentials(params: dict[str, Any], websocket: WebSocket) -> dict[str, str]:
    """connection_init payload keys (any case), falling back to the upgrade request's headers."""
    found = {str(k).lower(): str(v) for k, v in params.items() if isinstance(v, str)}
    for name in ("authorization", "x-api-key"):
        if name not in found and name in websocket.headers:
            found[name] = websocket.headers[name]
    return found


def encode_json(data: object) -> bytes:
    """orjson: several times faster than ``json.dumps``; non-ASCII is sent as UTF-8, not escaped."""
    return orjson.dumps(data, default=str)


class SharedPayloads:
    """The encoded ``next`` payloads of the last few results, by the identity of their data.

    A broadcast event's result is computed once and shared by every subscription with the same
    document and audience (resolvers/shared_events.py): the very same ``data`` object reaches
    each of them. Its JSON is encoded once here and only the subscription's own id is spliced
    in, so N subscribers cost one encoding instead of N. The text is the one ``encode_json``
    gives for the whole message (same keys in the same order). The cache holds its data objects,
    so an identity cannot be reused by another object while it is cached.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._texts: OrderedDict[int, tuple[object, str]] = OrderedDict()

    def message(self, message: Any) -> str | None:
        """The text of a ``next`` message carrying only data; None for any other message."""
        payload = message.get("payload") if message.get("type") == "next" else None
        if not isinstance(payload, dict) or len(payload) != 1 or not isinstance(payload.get("data"), dict):
            return None
        if list(message) != ["id", "type", "payload"]:
            return None
        return self.next(encode_json(message["id"]).decode(), payload["data"])

    def next(self, id_json: str, data: dict[str, Any]) -> str:
        """The ``next`` message for the operation whose id encodes as ``id_json``, carrying ``data``."""
        cached = self._texts.get(id(data))
        if cached is not None and cached[0] is data:
            text = cached[1]
        else:
            text = encode_json({"data": data}).decode()
            self._texts[id(data)] = (data, text)
            if len(self._texts) > self.size:
                self._texts.popitem(last=False)
        return f'{{"id":{id_json},"type":"next","payload":{text}}}'


SHARED_PAYLOADS = SharedPayloads()


class GatewayWebSocketAdapter(ASGIWebSocketAdapter):
    async def send_json(self, message: Any) -> None:
        """Once we closed a connection (slow subscriber, shutdown), its other operations'
        late messages are dropped instead of failing on the closed socket.
        graphql-transport-ws messages are text frames, so the orjson bytes go out as text."""
        text = SHARED_PAYLOADS.message(message)
        await self.send_text(text if text is not None else encode_json(message).decode())

    @staticmethod
    def encode_id(operation_id: str) -> str:
        return encode_json(operation_id).decode()

    def send_next(self, id_json: str, data: dict[str, Any]) -> Coroutine[Any, Any, None]:
        """A broadcast's ``next`` frame (gateway/web/broadcast.py), the text ``send_json`` sends for it."""
        return self.send_text(SHARED_PAYLOADS.next(id_json, data))

    async def send_text(self, text: str) -> None:
        if self.ws.application_state == WebSocketState.DISCONNECTED:
            return
        try:
            await self.ws.send_text(text)
        except WebSocketDisconnect as exc:
            if self.ws.application_state != WebSocketState.DISCONNECTED:
                raise WebSocketDisconnected from exc
        except Exception:
            if self.ws.application_state != WebSocketState.DISCONNECTED:
                raise


class GatewayGraphQL(GraphQL[Context, None]):
    services: Services
    websocket_adapter_class = GatewayWebSocketAdapter  # type: ignore[assignment]
    graphql_transport_ws_handler_class = GatewayTransportWSHandler

    def __init__(self, **kwargs: Any) -> None:
        from resolvers.schema import schema

        kwargs.setdefault("subscription_protocols", ("graphql-transport-ws",))
        kwargs.setdefault("max_subscriptions_per_connection", None)  # GatewayTransportWSHandler counts, with a code
        super().__init__(schema, **kwargs)
        self.subscription_counts = SubscriptionCounts()

    def should_render_graphql_ide(self, request: Any) -> bool:
        """Not for an APQ GET (``?extensions=`` with a hash and no query)."""
        return super().should_render_graphql_ide(request) and "extensions" not in request.query_params

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """Strawberry's run, with two refusals answered as GraphQL errors instead of plain text or
        a 500: a body that is not a JSON object (400), and MongoDB unreachable outside any
        resolver (503)."""
        try:
            return await super().run(request, context, root_value)
        except RequestRefused as exc:
            return _error_response(exc.reason, exc.code, exc.status_code)
        except Exception as exc:
            if isinstance(request, WebSocket) or not is_unavailable(exc):
                raise
            return _error_response(
                UNAVAILABLE_MESSAGE, "SERVICE_UNAVAILABLE", 503, {"retry-after": str(RETRY_AFTER_SECONDS)}
            )

    def parse_json(self, data: str | bytes) -> Any:
        """A GraphQL request body is a JSON object (or a batch: an array of objects); anything
        else, not JSON at all included, is a GraphQL error (BAD_REQUEST), not a plain-text 400."""
        try:
            parsed = self.decode_json(data)
        except ValueError:  # JSONDecodeError, and bytes that are not UTF-8
            raise RequestRefused(400, "The request is not valid JSON", "BAD_REQUEST") from None
        if isinstance(parsed, dict) or (isinstance(parsed, list) and all(isinstance(i, dict) for i in parsed)):
            return parsed
        raise RequestRefused(400, "The request must be a JSON object with a query", "BAD_REQUEST")

    def encode_json(self, data: object) -> bytes:
        return encode_json(data)

    def decode_json(self, data: str | bytes) -> object:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            # orjson refuses a lone surrogate escape ("\ud800"); the standard parser reads it, so
            # the input guard can answer BAD_USER_INPUT for that field. Truly broken JSON fails
            # here again and stays a 400.
            return json.loads(data)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        if isinstance(request, WebSocket):
            # Subscriptions authenticate in connection_init (see on_ws_connect).
            return SocketContext(services=self.services, principal=None, request=request, response=response)
        principal, auth_error = None, None
        address = client_address(request)
        credentialed = "authorization" in request.headers or "x-api-key" in request.headers
        limiter = self.services.rate_limits
        request.state.refusal = limiter.blocked(address) if credentialed else None
        if request.state.refusal is None:
            try:
                principal = await authenticate(
                    request.headers, db=self.services.db, jwt_secret=self.services.jwt_secret
                )
            except DomainError as exc:
                auth_error = exc
                request.state.refusal = await limiter.failed(address)
            except Exception as exc:  # an API key is looked up in MongoDB: it may be unreachable
                if is_unavailable(exc):
                    auth_error = ServiceUnavailable(UNAVAILABLE_MESSAGE)
                else:
                    log.exception("authentication failed unexpectedly")
                    auth_error = DomainError("Internal server error", code="INTERNAL_SERVER_ERROR")
        return Context(
            services=self.services,
            principal=principal,
            request=request,
            response=response,
            auth_error=auth_error,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate the connection once, from the connection_init payload.

        ``{"Authorization": "Bearer <jwt>"}`` (or ``{"X-Api-Key": ...}``); without
        credentials the connection is anonymous. Bad credentials close it with 4403.
        """
        assert isinstance(context, SocketContext)
        credentials = _credentials(context.connection_params or {}, context.request)
        address = client_address(context.request)
        if credentials and self.services.rate_limits.blocked(address) is not None:
            raise ConnectionRejectionError({"code": "RATE_LIMITED"})
        try:
            context.principal = await authenticate(
                credentials, db=self.services.db, jwt_secret=self.services.jwt_secret
            )
        except DomainError as exc:
            await self.services.rate_limits.failed(address)
            raise ConnectionRejectionError({"code": exc.code}) from None
        return UNSET

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        response = await super().get_sub_response(request)
        request.state.sub_response = response
        return response

    async def execute_operation(
        self,
        request: Any,
        request_adapter: Any,
        request_data: Any,
        context: Context,
        root_value: Any,
        sub_response: Any,
    ) -> Any:
        refusal = request.state.refusal
        if refusal is None and context.auth_error is None:
            kind, subject = rate_key(context.principal, client_address(request))
            refusal = await self.services.rate_limits.hit(kind, subject)
        if refusal is not None:
            sub_response.status_code = 429
            sub_response.headers["retry-after"] = str(refusal.retry_after)
            return ExecutionResult(data=None, errors=[rate_limited(refusal)])
        if context.auth_error is not None:
            return ExecutionResult(data=None, errors=[_auth_error(context.auth_error)])
        if too_large := _variables_too_large(
            getattr(request_data, "variables", None), self.services.settings.max_variables_bytes
        ):
            return ExecutionResult(data=None, errors=[too_large])
        persisted = None
        if isinstance(request_data, GraphQLRequestData):
            persisted = await resolve_persisted(
                self.services, request_data.query, request_data.extensions, context.principal
            )
            if persisted.error is not None:
                return ExecutionResult(data=None, errors=[persisted.error])
            request_data.query = persisted.query
        try:
            result = await super().execute_operation(
                request=request,
                request_adapter=request_adapter,
                request_data=request_data,
                context=context,
                root_value=root_value,
                sub_response=sub_response,
            )
        except HTTPException as exc:
            if isinstance(exc.__cause__, InvalidOperationTypeError) and request_adapter.method == "GET":
                # GraphQL over HTTP: a mutation sent with GET is 405, with Allow: POST.
                raise HTTPException(405, exc.reason) from exc
            raise
        if persisted is not None and persisted.register and persisted.query and not _has_request_errors(result):
            await self.services.persisted_queries.register(persisted.query, allow_listed=False, source="apq")
        return result

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        media = negotiate(request.headers.get("accept"))
        sub_response: Response = request.state.sub_response
        sub_response.headers["content-type"] = media
        if is_request_error(result):
            response.pop("data", None)
            if media == GRAPHQL_RESPONSE:
                sub_response.status_code = _request_error_status(result)
        if _codes(result) & {"SERVICE_UNAVAILABLE"}:
            sub_response.headers["retry-after"] = str(RETRY_AFTER_SECONDS)
            if media == GRAPHQL_RESPONSE:
                sub_response.status_code = 503
        return response

    def create_response(self, response_data: Any, sub_response: Response) -> Response:
        media = sub_response.headers.get("content-type", JSON)
        del sub_response.headers["content-type"]
        response = super().create_response(response_data, sub_response)
        response.headers["content-type"] = media
        return response


def _request_error(message: str, code: str, **details: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **details})


def _variables_too_large(variables: dict[str, Any] | None, limit: int) -> GraphQLError | None:
    if not variables:
        return None
    try:
        size = len(orjson.dumps(variables))
    except TypeError:  # a lone surrogate: json escapes it; the input guard then refuses it with a field
        size = len(json.dumps(variables))
    if size <= limit:
        return None
    return _request_error(
        f"variables are {size} bytes; the limit is {limit}", "VARIABLES_TOO_LARGE", size=size, limit=limit
    )


class RequestRefused(HTTPException):
    """A request refused before GraphQL execution, answered as a GraphQL error with a code."""

    def __init__(self, status_code: int, reason: str, code: str) -> None:
        super().__init__(status_code, reason)
        self.code = code


def _error_response(message: str, code: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status, headers=headers
    )


def _auth_error(error: DomainError) -> GraphQLError:
    return GraphQLError(error.message, extensions=error.extensions)


def _has_request_errors(result: Any) -> bool:
    return isinstance(result, ExecutionResult) and is_request_error(result)


def _codes(result: ExecutionResult) -> set[object]:
    return {(e.extensions or {}).get("code") for e in result.errors or []}


def _request_error_status(result: ExecutionResult) -> int:
    codes = _codes(result)
    if "RATE_LIMITED" in codes:
        return 429
    return 401 if "UNAUTHENTICATED" in codes else 400
