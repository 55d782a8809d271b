"""The ASGI application: GraphQL over HTTP and WebSocket, health, readiness and metrics."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from gateway.core.clock import Clock
from gateway.core.metrics import OPERATION_NAMES
from gateway.core.settings import Settings
from gateway.demo.seed import seed_demo
from gateway.runtime import open_services, prepare_when_reachable
from gateway.services import Services
from gateway.web.dashboard import routes as dashboard_routes
from gateway.web.graphql_view import GatewayGraphQL
from gateway.web.limits import middleware as limit_middleware
from gateway.web.metrics import metrics_endpoint
from gateway.web.request_id import RequestIdMiddleware
from gateway.workers.supervisor import running_workers, worker_states

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    services: Services | None = None,
    clock: Clock | None = None,
    run_workers: bool = True,
    demo: bool = False,
) -> Starlette:
    """Build the app. With ``services`` given (tests, embedding) it uses them as they are;
    otherwise its lifespan opens MongoDB (embedded or external) and closes it on shutdown.
    ``demo`` loads the demo data once MongoDB is up, before the first request.
    """
    state: dict[str, object] = {"ready": False}
    view = GatewayGraphQL(graphql_ide="graphiql" if settings.graphiql_enabled else None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            active = services
            if active is None:
                active = await stack.enter_async_context(open_services(settings, clock))
            else:
                await prepare_when_reachable(active.db)
            app.state.services = active
            view.services = active
            if demo:
                log.info(await seed_demo(active))
            if run_workers:
                # the audit log's sealer first, so it stops last: it seals what the workers recorded
                await stack.enter_async_context(active.admin_audit.sealer.in_background())
                await stack.enter_async_context(running_workers(active))
            state["ready"] = True
            try:
                yield
            finally:
                state["ready"] = False
                # Subscribers get a close frame (1001 going away) before the workers stop.
                await active.hub.close_all()

    async def healthz(request: Request) -> JSONResponse:
        """Liveness: fails only when this process cannot recover by itself (restart it)."""
        active: Services | None = getattr(request.app.state, "services", None)
        embedded = active.extras.get("embedded_mongod") if active is not None else None
        if embedded is not None and embedded.gone_for_good:
            return JSONResponse({"status": "failed", "reason": "embedded mongod is gone for good"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        """Readiness, within a second: 503 while MongoDB is unreachable. Kafka workers are
        reported in ``workers`` but never make the gateway unready (GraphQL does not need Kafka)."""
        active: Services | None = getattr(request.app.state, "services", None)
        mongo = active is not None and await active.db.ping()
        ready = bool(state["ready"]) and mongo
        body: dict[str, object] = {"status": "ready" if ready else "not ready", "mongodb": mongo}
        if active is not None:
            body["workers"] = worker_states(active)
        return JSONResponse(body, status_code=200 if ready else 503)

    OPERATION_NAMES.limit = settings.metrics_operation_names
    application = Starlette(
        routes=[
            Route("/graphql", view, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", view),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            *dashboard_routes,
        ],
        lifespan=lifespan,
        # the request id outermost, so a 413 or a CORS refusal carries one too
        middleware=[Middleware(RequestIdMiddleware), *limit_middleware(settings)],
    )
    return application
