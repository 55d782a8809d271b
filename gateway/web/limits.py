"""HTTP-level limits: the request body size (413) and CORS, both from the settings."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.core.settings import Settings

PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"


def error_body(message: str, code: str, **details: Any) -> bytes:
    """A GraphQL-shaped error document, for answers given before GraphQL runs."""
    return orjson.dumps({"errors": [{"message": message, "extensions": {"code": code, **details}}]})


class BodyLimit:
    """Refuses a body over ``max_bytes`` with 413, before the app reads it.

    A declared Content-Length over the limit is refused at once; a chunked body is read up to
    the limit and refused as soon as it passes it, so a client cannot make the gateway hold
    more than ``max_bytes`` of one request.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = error_body(
            f"The request body is larger than {self.max_bytes} bytes", PAYLOAD_TOO_LARGE, limit=self.max_bytes
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def middleware(settings: Settings) -> list[Middleware]:
    """CORS (only when origins are configured) outside the body limit."""
    stack = []
    if settings.cors_origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=[
                    "authorization",
                    "content-type",
                    "x-api-key",
                    "x-request-id",
                    "apollographql-client-name",
                ],
                expose_headers=["retry-after", "x-request-id"],
                max_age=600,
            )
        )
    stack.append(Middleware(BodyLimit, max_bytes=settings.max_body_bytes))
    return stack
