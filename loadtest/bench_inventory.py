"""Inventory benchmarks: the reservation engine in-process and POST /v1/reservations over HTTP.

    python -m loadtest.bench_inventory [--runs 3] [--reservations 60000] [--http-seconds 10] [--skip-http]

Servers: EMPORIUM_CACHE_URL=redis://... and EMPORIUM_DATABASE_URL=mysql://... when set, otherwise a
private Redis + MariaDB from infra/local/stack.py (stopped at the end).

Engine (no HTTP; every reservation durable in MySQL before it is acknowledged):
  * redis-benchmark EVALSHA of the reserve script, one reservation per call, 16 pipelined (server ceiling)
  * naive: redis-py asyncio, one Lua reserve per call, 50 concurrent callers, no MySQL (the ~10k/s baseline)
  * engine: ClusterEngine.reserve from many concurrent callers (micro-batched Lua + group commit)
HTTP (loadtest/bench_reservations_http.py: one `emporium serve` worker, 200 keep-alive wrk connections):
  * GET /healthz vs POST /v1/reservations on the same server: throughput ratio, p50/p99, oversell.
Each measurement runs --runs times; the median is printed with the same-run baseline and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import statistics
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pymysql
import redis
import redis.asyncio as aioredis
import uvloop

from inventory.cluster import ClusterEngine
from inventory.cluster.keys import Keys, ReserveOutcome, stock_hash
from inventory.domain import InsufficientStock, ReserveRequest
from loadtest.bench_reservations_http import run as http_bench
from loadtest.children import cpu_seconds as process_cpu_seconds
from loadtest.inventory_audit import (
    audit_mysql,
    mysql_target,
)
from loadtest.inventory_stack import fresh_engine, servers, unlink_keys

ROOT = Path(__file__).resolve().parents[1]
# A SKU of the fast path that never runs out, for the script-only measurements.
UNLIMITED_STOCK = stock_hash(on_hand=10**12, held=0, sold=0, limit=None, revision=1)


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
    sync = redis.Redis(host=host, port=int(port), db=0)
    src = (ROOT / "inventory" / "lua" / "reserve_batch.lua").read_text()
    sha = sync.script_load(src)
    prefix = f"rb-{uuid.uuid4().hex[:6]}"
    sync.set(f"{prefix}:ready", "1")
    sync.hset(Keys(prefix).stock("1", "SKU"), mapping=UNLIMITED_STOCK)
    cmd = [
        exe, "-h", host, "-p", port, "-n", str(n), "-P", "16", "-c", "50", "-r", "100000000", "-q",
        "EVALSHA", sha, "0", prefix, "1", "1", "60",
        "r__rand_int__ SKU c__rand_int__ 1 k__rand_int__ 9999999999\n",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    unlink_keys(sync, f"{prefix}:*")
    sync.close()
    match = re.search(r"([\d.]+) requests per second", out)
    if not match:
        raise RuntimeError(f"cannot parse redis-benchmark output: {out!r}")
    return float(match.group(1))


async def naive_lua(redis_url: str, total: int, concurrency: int = 50) -> float:
    """One EVALSHA (one reservation) per call from ``concurrency`` asyncio callers; no MySQL."""
    r = aioredis.Redis.from_url(redis_url, decode_responses=True, max_connections=concurrency)
    sha = await r.script_load((ROOT / "inventory" / "lua" / "reserve_batch.lua").read_text())
    prefix = f"naive-{uuid.uuid4().hex[:6]}"
    await r.set(f"{prefix}:ready", "1")
    await r.hset(Keys(prefix).stock("1", "SKU"), mapping=UNLIMITED_STOCK)
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            code = await r.evalsha(sha, 0, prefix, "1", 1, 60, f"r{i} SKU c{i} 1 k{i} 9999999999\n")
            assert code == ReserveOutcome.HELD, code

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


def server_pids(redis_url: str, mysql_url: str) -> dict[str, int]:
    """Process ids of redis-server and mariadbd when they run on this machine (for CPU accounting)."""
    pids: dict[str, int] = {}
    with contextlib.suppress(Exception):
        client = redis.Redis.from_url(redis_url)
        pids["redis"] = int(client.info("server")["process_id"])
        client.close()
    with contextlib.suppress(Exception):
        conn = pymysql.connect(**mysql_target(mysql_url).pymysql_kwargs())
        with conn.cursor() as cur:
            cur.execute("SELECT @@pid_file")
            (pid_file,) = cur.fetchone()
        conn.close()
        pids["mariadb"] = int(Path(pid_file).read_text().split()[0])
    return {name: pid for name, pid in pids.items() if Path(f"/proc/{pid}/stat").exists()}


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """utime + stime of this process and of ``pids`` (read from /proc)."""
    out = {"python": time.process_time()}
    for name, pid in pids.items():
        seconds = process_cpu_seconds(pid)
        if seconds == seconds:  # not NaN: the process is still there
            out[name] = seconds
    return out


class EngineLoad(NamedTuple):
    acknowledged: int
    refused: int
    elapsed: float
    cpu_us: dict[str, float]  # CPU microseconds per reservation, of this process and each server


async def reserve_concurrently(
    engine: ClusterEngine, total: int, concurrency: int, pids: dict[str, int]
) -> EngineLoad:
    """``total`` reservations of one unit of BENCH, ``concurrency`` callers in flight."""
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

    cpu_before = cpu_seconds(pids)
    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu_after = cpu_seconds(pids)
    cpu_us = {name: round((cpu_after[name] - cpu_before[name]) * 1e6 / total, 1) for name in cpu_after}
    return EngineLoad(ok, short, elapsed, cpu_us)


def engine_stats(engine: ClusterEngine, load: EngineLoad) -> dict[str, Any]:
    stats = engine.stats
    return {
        "acknowledged": load.acknowledged,
        "refused": load.refused,
        "lua_batches": stats.lua_batches,
        "avg_lua_batch": round(stats.lua_requests / max(1, stats.lua_batches), 1),
        "commits": stats.write_batches,
        "avg_commit_batch": round(stats.written / max(1, stats.write_batches), 1),
        "lua_s": round(stats.lua_seconds, 2),
        "commit_s": round(stats.commit_seconds, 2),
        "elapsed_s": round(load.elapsed, 2),
        "cpu_us": load.cpu_us,
    }


async def engine_rate(
    redis_url: str, mysql_url: str, total: int, concurrency: int = 4000
) -> tuple[float, dict[str, Any]]:
    """ClusterEngine.reserve, ``concurrency`` callers in flight; verifies MySQL and Redis agree after.

    Also reports CPU microseconds per reservation of this process, redis-server and mariadbd: on a
    shared machine that cost is what decides the rate, and it is far less noisy than the wall clock."""
    pids = server_pids(redis_url, mysql_url)
    async with fresh_engine(redis_url, mysql_url, "bench_inv", sweep_interval=None) as (engine, db_url):
        units = total * 9 // 10  # some requests are refused too: a sale sells out
        await engine.set_on_hand("BENCH", units)
        load = await reserve_concurrently(engine, total, concurrency, pids)
        ok, short = load.acknowledged, load.refused
        audit = audit_mysql(db_url, "BENCH")
        fast = await engine.fast_path_stock("BENCH")
        assert ok == units and short == total - units, (ok, short, units)
        assert audit.consistent and audit.held == ok, audit
        assert fast is not None and fast.held == ok, fast
        return total / load.elapsed, engine_stats(engine, load)


# Main -----------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reservations", type=int, default=60_000)
    parser.add_argument("--naive", type=int, default=30_000)
    parser.add_argument("--http-seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-engine", action="store_true")
    return parser.parse_args()


def bench_engine(args: argparse.Namespace, redis_url: str, mysql_url: str) -> None:
    """The engine against its baselines, ``args.runs`` times each; prints per run and the medians."""
    evalsha, naive, engine = [], [], []
    cpu: dict[str, list[float]] = {}
    for run in range(args.runs):
        evalsha.append(redis_benchmark_evalsha(redis_url))
        naive.append(asyncio.run(naive_lua(redis_url, args.naive)))
        rate, stats = asyncio.run(engine_rate(redis_url, mysql_url, args.reservations))
        engine.append(rate)
        for name, us in stats["cpu_us"].items():
            cpu.setdefault(name, []).append(us)
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
        f"{e / b:.0%} of it\n"
        f"  engine CPU per reservation (median, us): "
        + ", ".join(f"{name} {median_of(us):.1f}" for name, us in cpu.items())
        + f", total {sum(median_of(us) for us in cpu.values()):.1f}",
        flush=True,
    )


def main() -> None:
    args = parse_args()
    uvloop.install()
    with servers() as stack:
        if not args.skip_engine:
            bench_engine(args, stack.redis_url, stack.mysql_url)
        if not args.skip_http:
            split = stack.split_cores()
            http_bench(
                stack.redis_url,
                stack.mysql_url,
                runs=args.runs,
                seconds=args.http_seconds,
                connections=args.concurrency,
                threads=1,
                split=split,
            )


if __name__ == "__main__":
    main()
