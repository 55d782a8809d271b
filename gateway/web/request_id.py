"""Request ids and the one summary log line per request.

Every HTTP request and WebSocket connection gets an id: the client's (or the proxy's)
``X-Request-Id`` when it is a sane token, otherwise a fresh one. It is bound to every log line
written while the request runs, returned in the ``X-Request-Id`` response header (on the
WebSocket upgrade's accept too), and closes the request with one line: method, path, status,
duration and what the GraphQL layer noted (operation name and type, principal kind, error codes).

A plain ASGI middleware rather than Starlette's BaseHTTPMiddleware, so WebSockets and streamed
responses pass through untouched.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.core.logs import get_logger, request_scope
from gateway.core.metrics import HTTP_REQUESTS

HEADER = "x-request-id"
INTERNAL_ERROR = orjson.dumps(
    {"errors": [{"message": "Internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}
)
VALID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

log = get_logger("gateway.request")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's id when it is a sane token (no spaces, no control characters), else a new one."""
    for name, value in headers:
        if name.lower() == HEADER.encode():
            text = value.decode("latin-1").strip()
            if VALID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope.get("headers") or [])
        scope.setdefault("state", {})["request_id"] = request_id
        header = (HEADER.encode(), request_id.encode())
        status: dict[str, Any] = {}
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            kind = message["type"]
            if kind in ("http.response.start", "websocket.accept"):
                message = {**message, "headers": [*(message.get("headers") or []), header]}
                status["code"] = message.get("status", 101)
            elif kind == "websocket.close" and "code" not in status:
                status["code"] = 403  # closed before accepting: the upgrade was refused
            await send(message)

        with request_scope(request_id) as fields:
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                started_response = "code" in status
                status.setdefault("code", 500)
                HTTP_REQUESTS.labels("500").inc()
                log.exception("request failed", **_line(scope, status, started, fields))
                if started_response or scope["type"] != "http":
                    raise
                # Answer here rather than let Starlette's error page answer without the id the
                # caller needs to find this line in the logs (and as JSON, with a stable code).
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(INTERNAL_ERROR)),
                        ],
                    }
                )
                await send_with_id({"type": "http.response.body", "body": INTERNAL_ERROR})
                return
            HTTP_REQUESTS.labels(str(status.get("code", 500))).inc()
            path = scope.get("path", "")
            if path in QUIET_PATHS and status.get("code", 200) < 400:
                return
            log.info("request", **_line(scope, status, started, fields))


def _line(scope: Scope, status: dict[str, Any], started: float, fields: dict[str, Any] | Any) -> dict[str, Any]:
    return {
        "method": scope.get("method", "WS") if scope["type"] == "http" else "WS",
        "path": scope.get("path", ""),
        "status": status.get("code", 500),
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        **dict(fields),
    }
