"""A real ``loyalty-gateway serve`` process for crash and outage drills, driven over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gateway.store.embedded_mongod import free_port

CLI = [sys.executable, "-m", "gateway.cli"]


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


class GatewayProcess:
    """``serve`` on a free port with its own environment; stdout/stderr go to ``log``."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, *, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"gateway-{self.port}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
        self.env.update({"LOYALTY_DATA_DIR": str(data_dir), "LOYALTY_PORT": str(self.port)})
        self.env.update(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> GatewayProcess:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([*CLI, "serve", *args], env=self.env, stdout=log, stderr=log)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120) -> GatewayProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"gateway exited with {self.process.returncode}:\n{self.output()[-3000:]}")
            try:
                if self.get("/readyz").status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"gateway did not become ready:\n{self.output()[-3000:]}")

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        request = urllib.request.Request(f"{self.base}{path}", data=body, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return Response(answer.status, dict(answer.headers.items()), answer.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, dict(error.headers.items()), error.read())

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def graphql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        api_key: str | None = None,
        accept: str = "application/json",
    ) -> Response:
        headers = {"Content-Type": "application/json", "Accept": accept}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if api_key:
            headers["X-Api-Key"] = api_key
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        return self.request("POST", "/graphql", body, headers)

    def ok(self, query: str, variables: dict[str, Any] | None = None, **auth: Any) -> dict[str, Any]:
        body = self.graphql(query, variables, **auth).json()
        assert "errors" not in body, body["errors"]
        return dict(body["data"])

    def metric(self, name: str) -> float:
        """The value of one unlabelled sample in /metrics (0 when absent)."""
        for line in self.get("/metrics").body.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)


def wait_until(condition: Any, timeout: float = 60, what: str = "condition") -> Any:
    """Poll until ``condition()`` is truthy (a generous bound against a hung drill, not a speed check)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
