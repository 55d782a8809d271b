"""The command line and the embedded default, run as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jwt
import pytest

from gateway.store.embedded_mongod import EmbeddedMongo, free_port
from tests.conftest import JWT_SECRET

CLI = [sys.executable, "-m", "gateway.cli"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    full_env.update(env or {})
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def test_malformed_setting_fails_with_one_clear_line(tmp_path: Path) -> None:
    result = run_cli("serve", env={"LOYALTY_PORT": "eighty", "LOYALTY_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "LOYALTY_PORT" in result.stderr and "Traceback" not in result.stderr
    bad_uri = run_cli("serve", env={"LOYALTY_MONGODB_URI": "postgres://x", "LOYALTY_DATA_DIR": str(tmp_path)})
    assert bad_uri.returncode == 2 and "LOYALTY_MONGODB_URI" in bad_uri.stderr
    short = run_cli("token", env={"LOYALTY_JWT_SECRET": "short", "LOYALTY_DATA_DIR": str(tmp_path)})
    assert short.returncode == 2 and "LOYALTY_JWT_SECRET" in short.stderr


def test_token_command_mints_a_verifiable_token(tmp_path: Path) -> None:
    result = run_cli("token", "--role", "member", "--sub", "m-1", env={"LOYALTY_JWT_SECRET": JWT_SECRET})
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "m-1" and claims["role"] == "member"
    assert run_cli("token", "--role", "partner", env={"LOYALTY_JWT_SECRET": JWT_SECRET}).returncode == 2


def test_export_schema_prints_the_sdl() -> None:
    result = run_cli("export-schema")
    assert result.returncode == 0
    assert result.stdout == (Path(__file__).resolve().parents[2] / "schema.graphql").read_text()


async def test_embedded_mongo_keeps_data_across_restarts_on_a_new_port(tmp_path: Path) -> None:
    from gateway.store.mongo import create_client

    first = EmbeddedMongo(tmp_path)
    uri = await first.start()
    client = create_client(uri)
    await client.t.c.insert_one({"_id": "kept"})
    await client.close()
    first.stop()

    second = EmbeddedMongo(tmp_path)
    uri = await second.start()
    client = create_client(uri)
    try:
        assert await client.t.c.find_one({"_id": "kept"}) == {"_id": "kept"}
        async with client.start_session() as session, await session.start_transaction():
            await client.t.c.insert_one({"_id": "txn"}, session=session)
    finally:
        await client.close()
        second.stop()


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "gateway exited during start"
        try:
            if _get(f"{base}/readyz")["status"] == "ready":
                return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail("gateway did not become ready")


def _mongod_running(data_dir: Path) -> bool:
    lock = data_dir / "mongo" / "mongod.lock"
    return lock.exists() and lock.read_text().strip() != ""


def _post(base: str, query: str, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query}).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_serve_on_the_embedded_default_stops_mongod_and_keeps_data(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env.update({"LOYALTY_DATA_DIR": str(tmp_path), "LOYALTY_JWT_SECRET": JWT_SECRET})
    admin = run_cli("token", env={"LOYALTY_JWT_SECRET": JWT_SECRET}).stdout.strip()
    for run in ("first", "second"):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        demo = ["--demo"] if run == "first" else []
        process = subprocess.Popen(
            [*CLI, "serve", "--port", str(port), *demo], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait_ready(base, process)
            assert len(_post(base, "{ tiers { code name } }")["data"]["tiers"]) == 4
            assert _mongod_running(tmp_path)
            demo_member = _post(base, '{ member(id: "demo-liu") { tier { code } } }', admin)
            assert demo_member["data"]["member"]["tier"]["code"] == "SUPREME_VIP"  # loaded by the first --demo
            if run == "first":
                created = _post(
                    base, 'mutation { registerMember(input: {displayName: "Kept", id: "kept"}) { id } }', admin
                )
                assert created["data"]["registerMember"]["id"] == "kept"
            else:
                read = _post(base, '{ member(id: "kept") { displayName } }', admin)
                assert read["data"]["member"]["displayName"] == "Kept"
        finally:
            process.send_signal(signal.SIGTERM)
            # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says so.
            assert process.wait(60) in (0, -signal.SIGTERM)
        assert not _mongod_running(tmp_path), "mongod still holds its lock after the gateway stopped"
