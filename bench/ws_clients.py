"""Many WebSocket subscribers, cheap enough that the clients are not what a fan-out bench measures.

At 5,000 connections the `websockets` client library in one process spent longer parsing the
frames of one broadcast than the servers spent sending them, so the last arrival measured the
client. Here each connection is a bare asyncio protocol (an HTTP upgrade, masked text frames
out, unmasked frames in, pongs for pings) that only notes the arrival time of each text frame,
and the connections are spread over several processes (``time.monotonic`` is system-wide, so
their arrival times compare with the trigger's). Like a browser, each offers permessage-deflate;
frames are counted, never decompressed. Loopback only.

``ClientPool(processes)`` → ``await pool.open(host, port, path, n, messages)`` (``messages``: the
text frames each connection sends after the upgrade; each waits for one frame from the server
before the next, like ``connection_init`` → ``connection_ack`` → ``subscribe``) → ``counts()``,
``arrivals()`` → ``close()``.
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import os
import resource
import struct
import time
from multiprocessing.connection import Connection
from typing import Any


def raise_open_files_limit() -> int:
    """Soft open-files limit up to the hard one (each connection is a descriptor on each side)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 §5.2)."""
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class _Subscriber(asyncio.Protocol):
    def __init__(self, upgrade: bytes, messages: list[bytes], ready: asyncio.Future[None]) -> None:
        self.upgrade = upgrade
        self.pending = list(messages)
        self.ready = ready
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.arrivals: list[float] = []
        self.first: bytes | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport
        transport.write(self.upgrade)

    def data_received(self, data: bytes) -> None:
        at = time.monotonic()
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buffer.startswith(b"HTTP/1.1 101"):
                self._fail(f"upgrade refused: {bytes(self.buffer[:80])!r}")
                return
            del self.buffer[: end + 4]
            self.upgraded = True
            self._send_next()
        while len(self.buffer) >= 2:
            opcode, length = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
            start = 2
            if length == 126:
                if len(self.buffer) < 4:
                    return
                length, start = struct.unpack("!H", self.buffer[2:4])[0], 4
            elif length == 127:
                if len(self.buffer) < 10:
                    return
                length, start = struct.unpack("!Q", self.buffer[2:10])[0], 10
            if len(self.buffer) < start + length:
                return
            payload = bytes(self.buffer[start : start + length])
            del self.buffer[: start + length]
            if opcode == 0x9 and self.transport is not None:  # ping
                self.transport.write(_frame(0xA, payload))
            elif opcode == 0x8:  # close
                self._fail(f"closed by the server: {payload[:2].hex()} {payload[2:80]!r}")
            elif opcode == 0x1:
                if self.pending or not self.ready.done():
                    self._send_next()  # a handshake answer (connection_ack)
                else:
                    self.arrivals.append(at)
                    if self.first is None:
                        self.first = payload

    def _send_next(self) -> None:
        if self.pending and self.transport is not None:
            self.transport.write(_frame(0x1, self.pending.pop(0)))
            if not self.pending and not self.ready.done():
                self.ready.set_result(None)
        elif not self.ready.done():
            self.ready.set_result(None)

    def _fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(RuntimeError(why))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"connection lost: {exc}")


async def _open(
    subscribers: list[_Subscriber],
    transports: list[asyncio.BaseTransport],
    host: str,
    port: int,
    path: str,
    n: int,
    messages: list[bytes],
    protocol: str | None,
) -> None:
    loop = asyncio.get_running_loop()
    key = base64.b64encode(os.urandom(16)).decode()
    upgrade = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        # what browsers offer; a server that takes it compresses (the frames are counted, not read)
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        + (f"Sec-WebSocket-Protocol: {protocol}\r\n" if protocol else "")
        + "\r\n"
    ).encode()
    limit = asyncio.Semaphore(100)

    async def one() -> None:
        async with limit:
            ready: asyncio.Future[None] = loop.create_future()
            sub = _Subscriber(upgrade, messages, ready)
            transport, _ = await loop.create_connection(lambda: sub, host, port)
            transports.append(transport)
            subscribers.append(sub)
            try:
                await asyncio.wait_for(ready, 60)
            except TimeoutError:
                state = f"upgraded={sub.upgraded} left={len(sub.pending)} buffer={bytes(sub.buffer[:120])!r}"
                raise RuntimeError(f"no handshake within 60 s: {state}") from None

    await asyncio.gather(*(one() for _ in range(n)))


async def _serve(pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    subscribers: list[_Subscriber] = []
    transports: list[asyncio.BaseTransport] = []
    while True:
        command, args = await loop.run_in_executor(None, pipe.recv)
        if command == "open":
            try:
                await _open(subscribers, transports, *args)
                pipe.send(("ok", None))
            except Exception as exc:
                pipe.send(("error", repr(exc)))
        elif command == "counts":
            pipe.send(("ok", [len(s.arrivals) for s in subscribers]))
        elif command == "arrivals":
            first = next((s.first for s in subscribers if s.first is not None), None)
            pipe.send(("ok", ([s.arrivals for s in subscribers], first)))
        elif command == "trim":  # keep only the last arrival of each (the warm-up's)
            for s in subscribers:
                del s.arrivals[:-1]
            pipe.send(("ok", None))
        elif command == "close":
            for t in transports:
                t.close()
            await asyncio.sleep(0.2)
            pipe.send(("ok", None))
            return


def _worker(pipe: Connection) -> None:
    raise_open_files_limit()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_serve(pipe))


class ClientPool:
    """Subscribers spread over ``processes`` client processes."""

    def __init__(self, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.workers: list[Any] = []
        for _ in range(processes):
            mine, theirs = context.Pipe()
            worker = context.Process(target=_worker, args=(theirs,), daemon=True)
            worker.start()
            self.pipes.append(mine)
            self.workers.append(worker)

    async def _ask(self, command: str, args: Any = None, pipes: list[Connection] | None = None) -> list[Any]:
        loop = asyncio.get_running_loop()
        chosen = self.pipes if pipes is None else pipes
        for pipe in chosen:
            pipe.send((command, args))
        answers = await asyncio.gather(*(loop.run_in_executor(None, pipe.recv) for pipe in chosen))
        for status, value in answers:
            if status != "ok":
                raise RuntimeError(value)
        return [value for _, value in answers]

    async def open(
        self, host: str, port: int, path: str, n: int, messages: list[bytes], protocol: str | None = None
    ) -> None:
        share = [n // len(self.pipes) + (1 if i < n % len(self.pipes) else 0) for i in range(len(self.pipes))]
        loop = asyncio.get_running_loop()
        for pipe, count in zip(self.pipes, share, strict=True):
            pipe.send(("open", (host, port, path, count, messages, protocol)))
        answers = await asyncio.gather(*(loop.run_in_executor(None, pipe.recv) for pipe in self.pipes))
        for status, value in answers:
            if status != "ok":
                raise RuntimeError(value)

    async def counts(self) -> list[int]:
        return [c for part in await self._ask("counts") for c in part]

    async def arrivals(self) -> tuple[list[list[float]], bytes | None]:
        parts = await self._ask("arrivals")
        first = next((f for _, f in parts if f is not None), None)
        return [a for lists, _ in parts for a in lists], first

    async def trim(self) -> None:
        await self._ask("trim")

    async def wait_counts(self, target: list[int] | int, timeout: float = 120) -> list[int]:
        deadline = time.monotonic() + timeout
        while True:
            counts = await self.counts()
            wanted = target if isinstance(target, list) else [target] * len(counts)
            if all(c >= w for c, w in zip(counts, wanted, strict=True)):
                return counts
            if time.monotonic() > deadline:
                missing = sum(1 for c, w in zip(counts, wanted, strict=True) if c < w)
                raise RuntimeError(f"{missing} subscribers did not receive an event")
            await asyncio.sleep(0.05)

    async def settled(self, quiet: float = 1.0) -> list[int]:
        counts = await self.counts()
        while True:
            await asyncio.sleep(quiet)
            now = await self.counts()
            if now == counts:
                return now
            counts = now

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._ask("close"), 30)
        finally:
            for worker in self.workers:
                worker.join(5)
                if worker.is_alive():
                    worker.kill()
