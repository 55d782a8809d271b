"""The operator's live dashboard page: ``/dashboard`` (HTML), its script and its style sheet.

No build step and no CDN: three static files shipped in the package, charts drawn as inline
SVG by the script, so the page works offline (a kiosk on a shop floor). The page reads
aggregates through /graphql with a dashboard token (typed in, or passed as ``#token=`` in
the URL fragment, which never reaches a server log) and stays live over the WebSocket.

Every response carries a strict Content-Security-Policy: scripts and styles only from this
origin (no inline script, no eval), network only to this origin, no framing, no forms
posting elsewhere, no plugins.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

STATIC = resources.files("gateway.web") / "static" / "dashboard"
FILES = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "Cache-Control": "no-cache",
}


def _file(name: str) -> Response:
    body = (STATIC / name).read_bytes()
    return Response(body, media_type=FILES[name], headers=SECURITY_HEADERS)


async def page(request: Request) -> Response:
    return _file("index.html")


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in FILES or name == "index.html":
        return Response("Not Found", status_code=404, media_type="text/plain", headers=SECURITY_HEADERS)
    return _file(name)


routes = [
    Route("/dashboard", page, methods=["GET", "HEAD"]),
    Route("/dashboard/", page, methods=["GET", "HEAD"]),
    Route("/dashboard/{name}", asset, methods=["GET", "HEAD"]),
]
