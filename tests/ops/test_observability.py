"""Request ids, the structured log format and the Prometheus metrics, seen from outside.

Logs: the JSON renderer is configured for the test and the app's real log lines are read back
from stderr, so the test sees exactly what a log shipper would. Metrics: ``/metrics`` is scraped and
parsed with prometheus-client's own parser.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from gateway.core.auth import Role
from gateway.core.logs import REDACTED, configure_logging, get_logger, request_scope
from gateway.core.metrics import OperationNames
from gateway.core.settings import Settings
from gateway.services import Services
from gateway.store.embedded_mongod import free_port
from gateway.workers.expiry import run_expiry_once
from tests.conftest import JWT_SECRET, GraphQLClient, token
from tests.support.stream_helpers import gateway

ROOT = Path(__file__).resolve().parents[2]
REGISTER = "mutation Register($input: RegisterMemberInput!) { registerMember(input: $input) { id } }"


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """JSON logging to the captured stderr; yields a reader of the lines logged so far."""
    configure_logging("json", level="INFO")

    def lines() -> list[dict[str, Any]]:
        err = capsys.readouterr().err
        return [json.loads(line) for line in err.splitlines() if line.startswith("{")]

    yield lines
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_request_id_is_accepted_returned_and_generated(http: httpx.AsyncClient) -> None:
    given = await http.get("/healthz", headers={"X-Request-Id": "edge-7f3a.1"})
    assert given.headers["x-request-id"] == "edge-7f3a.1"
    fresh = await http.post("/graphql", json={"query": "{ tiers { code } }"})
    assert len(fresh.headers["x-request-id"]) == 32
    other = await http.post("/graphql", json={"query": "{ tiers { code } }"})
    assert other.headers["x-request-id"] != fresh.headers["x-request-id"]
    for hostile in ("has spaces in it", "x" * 200, "new\tline"):
        replaced = await http.get("/healthz", headers={"X-Request-Id": hostile})
        assert replaced.headers["x-request-id"] != hostile and len(replaced.headers["x-request-id"]) == 32
    error = await http.post("/graphql", content=b"{not json", headers={"content-type": "application/json"})
    assert error.status_code == 400 and "x-request-id" in error.headers


async def test_an_unhandled_error_answers_json_500_with_the_request_id(json_logs: Any) -> None:
    """Starlette's own error page answered without X-Request-Id, so the caller had nothing to quote
    to find the logged traceback; now the request id middleware answers the 500 itself."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from gateway.web.request_id import RequestIdMiddleware

    async def broken(request: Any) -> Any:
        raise RuntimeError("a bug")

    app = Starlette(routes=[Route("/broken", broken)], middleware=[Middleware(RequestIdMiddleware)])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/broken", headers={"X-Request-Id": "edge-500"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "edge-500"
    assert response.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "a bug" not in response.text
    failed = [line for line in json_logs() if line.get("event") == "request failed"]
    assert failed and failed[0]["request_id"] == "edge-500" and "a bug" in failed[0]["exception"]


async def test_a_websocket_upgrade_returns_the_request_id(settings: Settings, services: Services) -> None:
    async with (
        gateway(settings, services) as replica,
        connect(
            replica.url, subprotocols=["graphql-transport-ws"], additional_headers={"X-Request-Id": "ws-req-1"}
        ) as ws,
    ):
        assert ws.response is not None and ws.response.headers["x-request-id"] == "ws-req-1"


async def test_each_request_logs_one_json_line_with_operation_principal_codes_and_no_secrets(
    http: httpx.AsyncClient, gql: GraphQLClient, json_logs: Any
) -> None:
    admin = token(Role.ADMIN, "ops-admin")
    email = "liu.private@example.com"
    variables = {"input": {"id": "log-m1", "displayName": "Liu Private", "email": email, "phone": "+86 138 0000 0001"}}
    response = await http.post(
        "/graphql",
        json={"query": REGISTER, "variables": variables, "operationName": "Register"},
        headers={"Authorization": f"Bearer {admin}", "X-Request-Id": "req-register-1"},
    )
    assert response.json()["data"]["registerMember"]["id"] == "log-m1"
    await http.post(
        "/graphql",
        json={"query": REGISTER, "variables": variables, "operationName": "Register"},
        headers={"Authorization": f"Bearer {admin}", "X-Request-Id": "req-register-2"},
    )
    await http.post("/graphql", json={"query": "{ tiers { code } }"}, headers={"X-Request-Id": "req-anon"})
    await http.post("/graphql", json={"query": "query Me { me { id } }"}, headers={"X-Request-Id": "req-me"})

    lines = json_logs()
    by_id = {line["request_id"]: line for line in lines if line.get("event") == "request"}
    first = by_id["req-register-1"]
    assert first["level"] == "info" and first["logger"] == "gateway.request"
    assert (first["method"], first["path"], first["status"]) == ("POST", "/graphql", 200)
    assert first["operation"] == "Register" and first["operation_type"] == "mutation"
    assert first["principal"] == "admin" and first["error_codes"] == []
    assert isinstance(first["duration_ms"], float) and first["timestamp"].endswith("Z")
    assert by_id["req-register-2"]["error_codes"] == ["ALREADY_EXISTS"]
    assert by_id["req-anon"]["principal"] == "anonymous" and by_id["req-anon"]["operation"] == "anonymous"
    assert by_id["req-me"]["error_codes"] == ["UNAUTHENTICATED"]
    everything = json.dumps(lines)
    for secret in (admin, email, "Liu Private", "+86 138 0000 0001", JWT_SECRET):
        assert secret not in everything


def test_redaction_drops_personal_fields_and_masks_secrets_inside_messages(json_logs: Any) -> None:
    log = get_logger("tests.redaction")
    with request_scope("req-redact"):
        log.info(
            "calling partner with Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl for a@b.example",
            email="a@b.example",
            api_key="lgk_abcdefghijklmnop",
            member={"display_name": "Zhang", "tier": "VIP"},
        )
    logging.getLogger("tests.stdlib").warning("key lgk_abcdefghijklmnop rejected")
    first, second = json_logs()
    assert first["request_id"] == "req-redact"
    assert first["email"] == REDACTED and first["api_key"] == REDACTED
    assert first["member"] == {"display_name": REDACTED, "tier": "VIP"}
    assert "eyJ" not in first["event"] and "a@b.example" not in first["event"]
    assert second["event"] == f"key {REDACTED} rejected" and "request_id" not in second


def test_structlog_lines_follow_the_standard_library_levels(json_logs: Any) -> None:
    """structlog's lines are written directly, not through a handler; the logger levels still apply."""
    log = get_logger("tests.levels")
    logging.getLogger("tests.levels").setLevel(logging.WARNING)
    try:
        log.info("too quiet")
        log.warning("loud enough", code="X")
        logging.disable(logging.WARNING)
        log.warning("disabled")
    finally:
        logging.disable(logging.NOTSET)
        logging.getLogger("tests.levels").setLevel(logging.NOTSET)
    log.info("back")
    lines = json_logs()
    assert [(line["event"], line["level"], line["logger"]) for line in lines] == [
        ("loud enough", "warning", "tests.levels"),
        ("back", "info", "tests.levels"),
    ]
    assert lines[0]["code"] == "X" and "timestamp" in lines[0]


def test_console_format_is_readable_in_development(capsys: pytest.CaptureFixture[str]) -> None:
    chosen = configure_logging("auto", production=False)
    get_logger("tests.console").info("hello operator", members=3)
    err = capsys.readouterr().err
    assert chosen == "console"
    assert "hello operator" in err and "members=3" in err and not err.lstrip().startswith("{")
    assert configure_logging("auto", production=True) == "json"
    for handler in list(logging.getLogger().handlers):
        logging.getLogger().removeHandler(handler)


def test_operation_names_are_bounded() -> None:
    names = OperationNames(limit=2)
    assert names.label("GetMember", valid=True) == "GetMember"
    assert names.label("Checkout", valid=True) == "Checkout"
    assert names.label("Third", valid=True) == "other"
    assert names.label("GetMember", valid=True) == "GetMember", "known names keep their series"
    assert names.label(None, valid=True) == "anonymous"
    assert names.label("Anything", valid=False) == "invalid"
    assert OperationNames(limit=5).label("bad name; drop table", valid=True) == "other"


async def test_metrics_expose_latency_by_operation_errors_and_pool_usage(
    http: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    before = scrape((await http.get("/metrics")).text)
    await http.post("/graphql", json={"query": "query TierList { tiers { code } }", "operationName": "TierList"})
    await http.post("/graphql", json={"query": "query TierList { tiers { code } }", "operationName": "TierList"})
    await http.post("/graphql", json={"query": "{ tiers { code } }"})
    await http.post("/graphql", json={"query": "query Broken { nope }", "operationName": "Broken"})
    after = scrape((await http.get("/metrics")).text)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    count = "loyalty_graphql_operation_duration_seconds_count"
    assert grew(count, operation="TierList", type="query") == 2
    assert grew(count, operation="anonymous", type="query") == 1
    assert grew(count, operation="invalid", type="query") == 1
    assert grew("loyalty_graphql_errors_total", code="GRAPHQL_VALIDATION_FAILED") >= 1
    assert grew("loyalty_http_requests_total", status="200") >= 3
    pools = [labels for (name, labels) in after if name == "loyalty_mongodb_pool_connections_open"]
    assert pools, "the driver's pool listener reports open connections per server"
    assert sum(v for (name, _), v in after.items() if name == "loyalty_mongodb_pool_connections_open") >= 1
    assert value(after, "loyalty_mongodb_pool_checkout_seconds_count") > 0
    assert ("loyalty_subscribers", ()) in after


async def test_expiry_runs_are_counted(services: Services) -> None:
    before = scrape(_exposition())
    report = await run_expiry_once(services)
    after = scrape(_exposition())
    assert report.errors == []
    ok = ("loyalty_expiry_job_runs_total", (("outcome", "ok"),))
    assert after[ok] - before.get(ok, 0) == 1
    assert after[("loyalty_expiry_job_last_success_timestamp_seconds", ())] > 0


def _exposition() -> str:
    from prometheus_client import generate_latest

    return generate_latest().decode()


def test_every_metric_on_the_dashboard_is_exported() -> None:
    """The Grafana dashboard only graphs series the gateway really exposes."""
    import re

    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {m for expr in exprs for m in re.findall(r"\b(loyalty_[a-z_]+)", expr)}
    exported = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", _exposition(), re.M):
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}.get(kind, ("",))
        exported.update(name + suffix for suffix in suffixes)
        exported.add(name)
    assert used - exported == set()
    assert len(used) >= 10


def test_a_production_gateway_logs_only_json_lines(tmp_path: Path, mongo_uri: str) -> None:
    """A real `loyalty-gateway serve`: uvicorn's start-up lines, our request lines, all JSON."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env.update(
        {
            "LOYALTY_ENVIRONMENT": "production",
            "LOYALTY_JWT_SECRET": JWT_SECRET,
            "LOYALTY_COUPON_CODE_KEY": "coupon-key-" + JWT_SECRET,
            "LOYALTY_MONGODB_URI": mongo_uri,
            "LOYALTY_DATABASE": f"logs_{port}",
            "LOYALTY_DATA_DIR": str(tmp_path),
            "LOYALTY_PORT": str(port),
        }
    )
    cli = [sys.executable, "-m", "gateway.cli"]
    process = subprocess.Popen([*cli, "serve"], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        for _ in range(600):
            assert process.poll() is None, "the gateway exited"
            if subprocess.run([*cli, "probe"], env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the gateway never became ready")
        member = token(Role.MEMBER, "nobody", ttl=timedelta(minutes=5))
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql",
            data=json.dumps({"query": "query Me { me { id } }", "operationName": "Me"}).encode(),
            headers={"Content-Type": "application/json", "X-Request-Id": "prod-1", "Authorization": f"Bearer {member}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["X-Request-Id"] == "prod-1"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("loyalty-gateway on ")]
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(p["event"].startswith("Uvicorn running") or "Application startup" in p["event"] for p in parsed)
    (request_line,) = [p for p in parsed if p.get("request_id") == "prod-1"]
    assert request_line["operation"] == "Me" and request_line["principal"] == "member"
    assert member not in err


def test_tracing_configured_without_the_extra_stops_with_one_line(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("opentelemetry") is not None:
        pytest.skip("the tracing extra is installed here; this checks the message shown without it")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env.update(
        {
            "LOYALTY_JWT_SECRET": JWT_SECRET,
            "LOYALTY_DATA_DIR": str(tmp_path),
            "LOYALTY_OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "pip install 'loyalty-gateway[tracing]'" in result.stderr and "Traceback" not in result.stderr
