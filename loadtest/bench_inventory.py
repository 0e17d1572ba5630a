"""Inventory benchmarks: the reservation engine in-process and POST /v1/reservations over HTTP.

    python -m loadtest.bench_inventory [--runs 3] [--reservations 60000] [--http-seconds 8] [--skip-http]

Servers: EMPORIUM_CACHE_URL=redis://... and EMPORIUM_DATABASE_URL=mysql://... when set, otherwise a
private Redis + MariaDB from infra/local/stack.py (stopped at the end).

Engine (no HTTP; every reservation durable in MySQL before it is acknowledged):
  * redis-benchmark EVALSHA of the reserve script, one reservation per call, 16 pipelined (server ceiling)
  * naive: redis-py asyncio, one Lua reserve per call, 50 concurrent callers, no MySQL (the ~10k/s baseline)
  * engine: ClusterEngine.reserve from many concurrent callers (micro-batched Lua + group commit)
HTTP (one uvicorn worker, `emporium serve`, 200 concurrent keep-alive clients from an aiohttp driver):
  * GET /healthz vs POST /v1/reservations on the same server: throughput ratio, p50/p99, oversell.
Each measurement runs --runs times; the median is printed with the same-run baseline and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from inventory.cluster import ClusterEngine
from inventory.domain import InsufficientStock, ReserveRequest
from inventory.testing import (
    audit_mysql,
    drop_mysql_database,
    free_port,
    mysql_target,
    mysql_url_with_database,
)

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def servers() -> Iterator[tuple[str, str]]:
    redis_url = os.environ.get("EMPORIUM_CACHE_URL", "")
    mysql_url = os.environ.get("EMPORIUM_DATABASE_URL", "")
    if redis_url.startswith("redis://") and mysql_url.startswith("mysql://"):
        yield redis_url, mysql_url
        return
    from infra.local.stack import LocalStack

    home = Path(tempfile.mkdtemp(prefix="bench-inventory-"))
    stack = LocalStack(home)
    try:
        urls = stack.ensure_many(["redis", "mariadb"])
        print(f"# started private redis + mariadb under {home}")
        yield urls["redis"], urls["mariadb"]
    finally:
        stack.stop_all()
        shutil.rmtree(home, ignore_errors=True)


def median_of(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# Engine ---------------------------------------------------------------------------------------------


def redis_benchmark_evalsha(redis_url: str, n: int = 200_000) -> float:
    """redis-benchmark: EVALSHA of the real reserve script, one reservation per call, -P 16."""
    exe = shutil.which("redis-benchmark")
    if exe is None:
        raise SystemExit("redis-benchmark not found (apt-get install redis-tools)")
    parts = urlsplit(redis_url)
    host, port = parts.hostname or "127.0.0.1", str(parts.port or 6379)
    import redis

    sync = redis.Redis(host=host, port=int(port), db=0)
    src = (ROOT / "inventory" / "lua" / "reserve_batch.lua").read_text()
    sha = sync.script_load(src)
    prefix = f"rb-{uuid.uuid4().hex[:6]}"
    sync.set(f"{prefix}:ready", "1")
    sync.hset(f"{prefix}:1:s:SKU", mapping={"oh": 10**12, "h": 0, "so": 0, "lim": -1, "rev": 1})
    cmd = [
        exe, "-h", host, "-p", port, "-n", str(n), "-P", "16", "-c", "50", "-r", "100000000", "-q",
        "EVALSHA", sha, "0", prefix, "1", "60",
        "r__rand_int__ SKU c__rand_int__ 1 k__rand_int__ 9999999999\n",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    _unlink_sync(sync, f"{prefix}:*")
    sync.close()
    match = re.search(r"([\d.]+) requests per second", out)
    if not match:
        raise RuntimeError(f"cannot parse redis-benchmark output: {out!r}")
    return float(match.group(1))


def _unlink_sync(client: Any, pattern: str) -> None:
    chunk: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=5000):
        chunk.append(key)
        if len(chunk) >= 5000:
            client.unlink(*chunk)
            chunk.clear()
    if chunk:
        client.unlink(*chunk)


async def naive_lua(redis_url: str, total: int, concurrency: int = 50) -> float:
    """One EVALSHA (one reservation) per call from ``concurrency`` asyncio callers; no MySQL."""
    r = aioredis.Redis.from_url(redis_url, decode_responses=True, max_connections=concurrency)
    sha = await r.script_load((ROOT / "inventory" / "lua" / "reserve_batch.lua").read_text())
    prefix = f"naive-{uuid.uuid4().hex[:6]}"
    await r.set(f"{prefix}:ready", "1")
    await r.hset(f"{prefix}:1:s:SKU", mapping={"oh": 10**12, "h": 0, "so": 0, "lim": -1, "rev": 1})
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            code = await r.evalsha(sha, 0, prefix, "1", 60, f"r{i} SKU c{i} 1 k{i} 9999999999\n")
            assert code == "O", code

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = total / (time.perf_counter() - started)
    chunk: list[str] = []
    async for key in r.scan_iter(match=f"{prefix}:*", count=5000):
        chunk.append(key)
        if len(chunk) >= 5000:
            await r.unlink(*chunk)
            chunk.clear()
    if chunk:
        await r.unlink(*chunk)
    await r.aclose()
    return rate


async def engine_rate(
    redis_url: str, mysql_url: str, total: int, concurrency: int = 4000
) -> tuple[float, dict[str, Any]]:
    """ClusterEngine.reserve, ``concurrency`` callers in flight; verifies MySQL and Redis agree after."""
    db_url = mysql_url_with_database(mysql_url, f"bench_inv_{uuid.uuid4().hex[:8]}")
    engine = ClusterEngine(redis_url, mysql_target(db_url), sweep_interval=None)
    await engine.start()
    try:
        units = total * 9 // 10  # some requests are refused too: a sale sells out
        await engine.set_on_hand("BENCH", units)
        counter = iter(range(total))
        ok = short = 0

        async def caller() -> None:
            nonlocal ok, short
            for i in counter:
                try:
                    await engine.reserve(
                        ReserveRequest(
                            sku="BENCH", quantity=1, customer_id=f"c{i % 50000}", idempotency_key=f"b{i}"
                        )
                    )
                    ok += 1
                except InsufficientStock:
                    short += 1

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        audit = audit_mysql(db_url, "BENCH")
        fast = await engine.fast_path_stock("BENCH")
        assert ok == units and short == total - units, (ok, short, units)
        assert audit.consistent and audit.held == ok, audit
        assert fast is not None and fast.held == ok, fast
        stats = {
            "acknowledged": ok,
            "refused": short,
            "lua_batches": engine.stats.lua_batches,
            "avg_lua_batch": round(engine.stats.lua_requests / max(1, engine.stats.lua_batches), 1),
            "commits": engine.stats.write_batches,
            "avg_commit_batch": round(engine.stats.written / max(1, engine.stats.write_batches), 1),
            "lua_s": round(engine.stats.lua_seconds, 2),
            "commit_s": round(engine.stats.commit_seconds, 2),
            "elapsed_s": round(elapsed, 2),
        }
        return total / elapsed, stats
    finally:
        await engine.close()
        drop_mysql_database(db_url)


# HTTP -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def api_server(redis_url: str, mysql_url: str, token: str) -> Iterator[tuple[str, str]]:
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="bench-http-"))
    db_url = mysql_url_with_database(mysql_url, f"bench_http_{uuid.uuid4().hex[:8]}")
    env = {
        **os.environ,
        "EMPORIUM_DATA_DIR": str(data),
        "EMPORIUM_EVENT_LOG_URL": f"sqlite:///{data}/events.db",
        "EMPORIUM_DATABASE_URL": db_url,
        "EMPORIUM_CACHE_URL": redis_url,
        "EMPORIUM_ADMIN_TOKEN": token,
        "EMPORIUM_LOG_LEVEL": "warning",
    }
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from emporium.cli import main; main()", "serve", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {(data / 'server.log').read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready: {(data / 'server.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield base, db_url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        drop_mysql_database(db_url)
        shutil.rmtree(data, ignore_errors=True)


async def drive(
    base: str, seconds: float, concurrency: int, make: Callable[[Any, int], Awaitable[int]]
) -> tuple[float, float, float, dict[int, int]]:
    """``concurrency`` workers loop ``make`` for ``seconds``; returns rps, p50 ms, p99 ms, statuses."""
    import aiohttp

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    seq = iter(range(10**12))
    stop_at = 0.0
    async with aiohttp.ClientSession(base, connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                status = await make(session, next(seq))
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1

        stop_at = time.perf_counter() + 1.0  # warm-up (connections, JIT caches)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        latencies.clear()
        statuses.clear()
        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    return len(latencies) / elapsed, p50, p99, statuses


async def http_round(base: str, token: str, seconds: float, concurrency: int, run: int) -> dict[str, Any]:
    import aiohttp
    import httpx

    async def healthz(session: aiohttp.ClientSession, _: int) -> int:
        async with session.get("/healthz") as resp:
            await resp.read()
            return resp.status

    sku = f"HTTP{run}"
    units = 30_000
    async with httpx.AsyncClient(base_url=base) as c:
        r = await c.put(
            f"/v1/stock/{sku}", json={"on_hand": units}, headers={"Authorization": f"Bearer {token}"}
        )
        r.raise_for_status()
    tag = uuid.uuid4().hex[:6]

    async def reserve(session: aiohttp.ClientSession, i: int) -> int:
        async with session.post(
            "/v1/reservations",
            json={"sku": sku, "quantity": 1, "customer_id": f"c{i}"},
            headers={"Idempotency-Key": f"{tag}-{i}"},
        ) as resp:
            await resp.read()
            return resp.status

    h_rps, _h_p50, h_p99, _ = await drive(base, seconds, concurrency, healthz)
    r_rps, r_p50, r_p99, statuses = await drive(base, seconds, concurrency, reserve)
    async with httpx.AsyncClient(base_url=base) as c:
        stock = (await c.get(f"/v1/stock/{sku}")).json()
    return {
        "healthz_rps": h_rps, "healthz_p99": h_p99, "reserve_rps": r_rps, "reserve_p50": r_p50,
        "reserve_p99": r_p99, "statuses": statuses, "held": stock["held"], "on_hand": stock["on_hand"],
        "oversell": max(0, stock["held"] + stock["sold"] - stock["on_hand"]),
    }  # fmt: skip


def _http_line(r: dict[str, Any]) -> str:
    return (
        f"ratio {r['reserve_rps'] / r['healthz_rps']:.0%} | /healthz {r['healthz_rps']:,.0f} rps"
        f" (p99 {r['healthz_p99']:.1f} ms) | POST /v1/reservations"
        f" {r['reserve_rps']:,.0f} rps p50 {r['reserve_p50']:.1f} ms p99 {r['reserve_p99']:.1f} ms"
        f" statuses {r['statuses']} held {r['held']}/{r['on_hand']} oversell {r['oversell']}"
    )


# Main -----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reservations", type=int, default=60_000)
    parser.add_argument("--naive", type=int, default=30_000)
    parser.add_argument("--http-seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-engine", action="store_true")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    with servers() as (redis_url, mysql_url):
        if not args.skip_engine:
            evalsha, naive, engine = [], [], []
            for run in range(args.runs):
                evalsha.append(redis_benchmark_evalsha(redis_url))
                naive.append(asyncio.run(naive_lua(redis_url, args.naive)))
                rate, stats = asyncio.run(engine_rate(redis_url, mysql_url, args.reservations))
                engine.append(rate)
                print(
                    f"run {run + 1}: redis-benchmark EVALSHA -P16 {evalsha[-1]:,.0f}/s | naive 1 Lua/call "
                    f"{naive[-1]:,.0f}/s | engine {rate:,.0f}/s {stats}",
                    flush=True,
                )
            e, n, b = median_of(engine), median_of(naive), median_of(evalsha)
            print(
                f"ENGINE reservations/s (durable in MySQL before ack), median of {args.runs}: {e:,.0f}/s\n"
                f"  baseline naive one-Lua-call-per-reservation: {n:,.0f}/s -> ratio {e / n:.2f}x"
                f" (target >= 3x, >= 30k/s)\n"
                f"  redis-benchmark EVALSHA (server ceiling, same script, -P 16): {b:,.0f}/s -> engine is "
                f"{e / b:.0%} of it",
                flush=True,
            )
        if not args.skip_http:
            token = uuid.uuid4().hex
            rounds = []
            with api_server(redis_url, mysql_url, token) as (base, _db):
                for run in range(args.runs):
                    result = asyncio.run(http_round(base, token, args.http_seconds, args.concurrency, run))
                    rounds.append(result)
                    print(f"run {run + 1}: {_http_line(result)}", flush=True)
            h = median_of([r["healthz_rps"] for r in rounds])
            rr = median_of([r["reserve_rps"] for r in rounds])
            p99 = median_of([r["reserve_p99"] for r in rounds])
            paired = median_of([r["reserve_rps"] / r["healthz_rps"] for r in rounds])
            print(
                f"HTTP POST /v1/reservations at {args.concurrency} clients, median of {args.runs}:"
                f" {rr:,.0f} rps, p99 {p99:.1f} ms (target <= 50 ms)\n"
                f"  baseline GET /healthz same server: {h:,.0f} rps -> ratio {rr / h:.0%}, median of per-run"
                f" ratios {paired:.0%} (target >= 50%)\n"
                f"  oversell in every run: {[r['oversell'] for r in rounds]} (must be 0)",
                flush=True,
            )


if __name__ == "__main__":
    main()
