"""Issue 16 §1-2 through a real ``serve``: crashes never brick the next start, outages answer honestly."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.core.auth import Role
from gateway.store.embedded_mongod import EmbeddedMongo, _pid_alive, mongods_on
from tests.conftest import JWT_SECRET, token
from tests.support.gateway_process import GatewayProcess, wait_until

ENV = {"LOYALTY_JWT_SECRET": JWT_SECRET}
REGISTER = 'mutation($id: String!) { registerMember(input: {displayName: "Kept", id: $id}) { id } }'
READ = 'query($id: ID!) { member(id: $id) { displayName } }'
GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture
def gateways() -> Iterator[list[GatewayProcess]]:
    started: list[GatewayProcess] = []
    yield started
    for gateway in started:
        gateway.stop()


def serve(gateways: list[GatewayProcess], data_dir: Path, **env: str) -> GatewayProcess:
    gateway = GatewayProcess(data_dir, {**ENV, **env})
    gateways.append(gateway)
    return gateway.start()


def mongod_of(data_dir: Path) -> int:
    pids = mongods_on(data_dir / "mongo")
    assert len(pids) == 1, pids
    return pids[0]


def test_sigkill_of_the_gateway_takes_mongod_down_and_the_next_serve_keeps_the_data(
    tmp_path: Path, gateways: list[GatewayProcess]
) -> None:
    admin = token(Role.ADMIN)
    first = serve(gateways, tmp_path).wait_ready()
    first.ok(REGISTER, {"id": "kept"}, token=admin)
    mongod = mongod_of(tmp_path)

    first.kill()  # no shutdown code runs: the kernel's parent-death signal is all mongod gets
    wait_until(lambda: not _pid_alive(mongod), what="mongod to stop after its gateway died")

    second = serve(gateways, tmp_path).wait_ready()
    assert second.ok(READ, {"id": "kept"}, token=admin)["member"]["displayName"] == "Kept"


async def test_an_orphaned_mongod_of_the_data_dir_is_stopped_and_the_start_goes_on(
    tmp_path: Path, gateways: list[GatewayProcess]
) -> None:
    # A mongod left running on this data dir by a gateway that is gone (no parent-death
    # signal: another platform, or a gateway version before it): it holds mongod.lock.
    orphan = EmbeddedMongo(tmp_path)
    await orphan.start()
    orphan_process = orphan.process
    assert orphan_process is not None
    orphan.lock.release()  # the owning gateway is dead: its flock is gone

    gateway = serve(gateways, tmp_path).wait_ready()
    assert orphan_process.wait(30) == 0  # stopped cleanly (SIGTERM), not killed
    assert gateway.ok("{ tiers { code } }")["tiers"]
    assert "stopping orphaned mongod" in gateway.output()


def test_a_second_gateway_on_a_live_data_dir_is_refused_with_the_owner(
    tmp_path: Path, gateways: list[GatewayProcess]
) -> None:
    first = serve(gateways, tmp_path).wait_ready()
    second = serve(gateways, tmp_path)
    assert second.process is not None
    assert second.process.wait(60) == 2, second.output()
    assert f"another gateway (pid {first.process.pid if first.process else '?'})" in second.output()
    assert first.ok("{ tiers { code } }")["tiers"]  # the owner is untouched


def test_a_killed_mongod_is_restarted_and_writes_succeed_again(tmp_path: Path, gateways: list[GatewayProcess]) -> None:
    admin = token(Role.ADMIN)
    gateway = serve(gateways, tmp_path, LOYALTY_EMBEDDED_MONGOD_RESTART_BACKOFF_SECONDS="0.2").wait_ready()
    gateway.ok(REGISTER, {"id": "before"}, token=admin)

    os.kill(mongod_of(tmp_path), signal.SIGKILL)
    wait_until(lambda: gateway.metric("loyalty_embedded_mongod_restarts_total") == 1, what="the restart")
    wait_until(lambda: gateway.get("/readyz").status == 200, what="readiness after the restart")

    gateway.ok(REGISTER, {"id": "after"}, token=admin)
    assert gateway.ok(READ, {"id": "before"}, token=admin)["member"]["displayName"] == "Kept"
    assert gateway.get("/healthz").status == 200
    assert "embedded mongod exited" in gateway.output()


def test_with_mongod_gone_for_good_requests_answer_service_unavailable_and_healthz_fails(
    tmp_path: Path, gateways: list[GatewayProcess]
) -> None:
    admin = token(Role.ADMIN)
    gateway = serve(gateways, tmp_path, LOYALTY_EMBEDDED_MONGOD_MAX_RESTARTS="0").wait_ready()
    os.kill(mongod_of(tmp_path), signal.SIGKILL)
    wait_until(lambda: gateway.get("/healthz").status == 503, what="/healthz to fail")

    ready = gateway.get("/readyz")
    assert ready.status == 503 and ready.json()["mongodb"] is False

    modern = gateway.graphql(REGISTER, {"id": "x"}, token=admin, accept=GRAPHQL_RESPONSE)
    assert modern.status == 503
    assert modern.headers["retry-after"].isdigit()
    assert [e["extensions"]["code"] for e in modern.json()["errors"]] == ["SERVICE_UNAVAILABLE"]

    legacy = gateway.graphql(READ, {"id": "x"}, token=admin)
    assert legacy.status == 200  # application/json: errors travel in a 200, as GraphQL over HTTP says
    assert [e["extensions"]["code"] for e in legacy.json()["errors"]] == ["SERVICE_UNAVAILABLE"]

    by_key = gateway.graphql("{ tiers { code } }", api_key="lk_some-partner-key", accept=GRAPHQL_RESPONSE)
    assert by_key.status == 503  # the key lookup itself needs MongoDB
    assert by_key.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"

    assert "Traceback" not in gateway.output()
    assert "INTERNAL_SERVER_ERROR" not in modern.body.decode() + legacy.body.decode()
