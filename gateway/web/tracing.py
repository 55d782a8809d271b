"""Optional OpenTelemetry tracing: Starlette requests and PyMongo commands, exported over OTLP/HTTP.

Off unless ``LOYALTY_OTEL_EXPORTER_OTLP_ENDPOINT`` is set, and it needs the ``tracing`` extra
(``pip install 'loyalty-gateway[tracing]'``; the Docker image has it). Spans carry the request id
as an attribute so a trace and the JSON log lines of one request find each other. PyMongo's
instrumentation records command names and collections, never documents or query values
(``capture_statement`` stays off).
"""

from __future__ import annotations

from typing import Any

from gateway.core.logs import current_request_id, get_logger
from gateway.core.settings import Settings

log = get_logger(__name__)


class TracingUnavailable(RuntimeError):
    """Tracing was configured but the ``tracing`` extra is not installed."""


def enable_tracing(app: Any, settings: Settings) -> Any:
    """Instrument ``app`` and the MongoDB driver; returns the tracer provider."""
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
        from opentelemetry.instrumentation.starlette import StarletteInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise TracingUnavailable(
            "LOYALTY_OTEL_EXPORTER_OTLP_ENDPOINT is set but the tracing extra is not installed: "
            "pip install 'loyalty-gateway[tracing]'"
        ) from exc

    endpoint = str(settings.otel_exporter_otlp_endpoint).rstrip("/")
    provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    trace.set_tracer_provider(provider)

    def server_request_hook(span: Any, scope: dict[str, Any]) -> None:
        request_id = (scope.get("state") or {}).get("request_id") or current_request_id()
        if span is not None and span.is_recording() and request_id:
            span.set_attribute("loyalty.request_id", request_id)

    StarletteInstrumentor.instrument_app(app, tracer_provider=provider, server_request_hook=server_request_hook)
    PymongoInstrumentor().instrument(tracer_provider=provider)
    log.info("tracing on", endpoint=endpoint)
    return provider
