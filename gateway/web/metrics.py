"""``/metrics``: Prometheus text exposition of the counters in ``gateway.core.metrics``."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from gateway.core.metrics import SUBSCRIBERS


async def metrics_endpoint(request: Request) -> Response:
    services = getattr(request.app.state, "services", None)
    if services is not None:
        SUBSCRIBERS.set(services.hub.subscriber_count())
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
