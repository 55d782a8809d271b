"""A small HTTP/1.1 keep-alive load generator for loopback benchmarks.

Each of ``connections`` connections sends one pre-built request, waits for the whole
response, and sends the next: like autocannon or wrk with one request in flight per
connection. Requests are built once as bytes, so the client spends its CPU on the
sockets rather than on an HTTP library. Bounded in both count and time: a run stops
after ``requests`` responses or ``seconds``, whichever comes first. Loopback only.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


def post_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Result:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        """Latency percentile in milliseconds."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if length is not None:
        return status, await reader.readexactly(length)
    if not chunked:
        raise RuntimeError("response without a length")
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return status, body
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def fetch(host: str, port: int, request: bytes) -> tuple[int, bytes]:
    """One request on its own connection: for checks, not for load."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        return await _read_response(reader)
    finally:
        writer.close()


async def run(
    host: str, port: int, request: bytes, *, connections: int = 32, requests: int = 5_000, seconds: float = 10.0
) -> Result:
    """Drive the server until ``requests`` responses arrived or ``seconds`` passed."""
    result = Result()
    budget = [requests]
    deadline = time.monotonic() + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while budget[0] > 0 and time.monotonic() < deadline:
                budget[0] -= 1
                started = time.perf_counter()
                writer.write(request)
                status, _ = await _read_response(reader)
                result.latencies.append(time.perf_counter() - started)
                result.requests += 1
                if status != 200:
                    result.errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    result.seconds = time.perf_counter() - started
    return result
