"""A minimal closed-loop HTTP/1.1 load driver for benchmarks: N keep-alive connections, each sending the
next request as soon as the previous response is read.

Why not Locust or httpx here: the benchmarks compare an endpoint's throughput with ``/healthz`` on the same
server, and on a 2-core machine the load tool must stay cheap or it measures itself. Raw asyncio streams
with uvloop cost a few microseconds per request; the same driver, concurrency and duration are used for
the endpoint and its baseline, so the ratio is fair.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def summary(self) -> str:
        return (
            f"{self.rps:8.0f} req/s  p50 {self.percentile(50) * 1000:6.2f} ms  "
            f"p99 {self.percentile(99) * 1000:6.2f} ms  errors {self.errors}"
        )


async def _one(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = _LENGTH.search(head)
    body = await reader.readexactly(int(match.group(1))) if match else b""
    return status, body


async def drive(
    host: str,
    port: int,
    paths: Sequence[str],
    *,
    concurrency: int,
    seconds: float,
    headers: str = "",
) -> LoadResult:
    """Send GETs for ``paths`` (round robin, each worker from its own offset) for ``seconds``."""
    result = LoadResult()
    requests = [f"GET {p} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode() for p in paths]
    started = time.perf_counter()
    stop_at = started + seconds

    async def worker(offset: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        i = offset
        try:
            while time.perf_counter() < stop_at:
                request = requests[i % len(requests)]
                i += concurrency
                t0 = time.perf_counter()
                try:
                    status, _ = await _one(reader, writer, request)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    result.errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                result.latencies.append(time.perf_counter() - t0)
                result.requests += 1
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status >= 400:
                    result.errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


async def get(host: str, port: int, path: str) -> tuple[int, bytes]:
    """One request on a fresh connection (setup and polling, not measured load)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        return await _one(reader, writer, request)
    finally:
        writer.close()


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
