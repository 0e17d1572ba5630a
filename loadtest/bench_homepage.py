"""Benchmark: a cached ``GET /v1/homepage`` against ``GET /healthz`` on the same server, driven by wrk.

    python -m loadtest.bench_homepage [--runs 3] [--seconds 10] [--connections 32] [--threads 1]
                                      [--synthetic-products N] [--no-pin]

1. Imports the real catalogs (bigbasket + myntra, ~40k products, with stock) into a fresh embedded data
   dir, or the synthetic catalog when ``../shared/datasets`` is absent (it says so), and projects them into
   Tantivy here, so that the server starts without indexing.
2. Publishes what analytics would: a trending list and one shopper's recommendations.
3. Serves the app (``emporium serve``: one worker, the in-process homepage cache and out-of-stock set)
   with the anonymous rate limit lifted (the limiter still counts every request, of both endpoints),
   and waits until the homepage shows the catalog.
4. Each run measures, with the same wrk connections, threads and duration, in turn: ``/healthz``, the
   anonymous homepage, and the personalised homepage (``X-User-Id``). The homepage is cached: these
   runs measure the request path (the cache, the live stock filter, the recommendations lookup), not
   builds.

Placement (as ``loadtest.bench_reservations_http``): the server on one core, wrk on the other
(``--no-pin`` lets the scheduler place both). Prints each run and the medians: homepage / healthz
throughput (target >= 0.8) and the homepage p99 (target <= 10 ms), with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvloop

from emporium.adapters import EVENT_LOG
from kernel.contracts.events import (
    RecommendationsComputed,
    TrendingComputed,
    TrendingEntry,
    new_event,
)
from kernel.eventlog.processing import publish_events
from kernel.settings import Settings, load_settings
from loadtest.bench_reservations_http import WRK_SCRIPT, WrkResult, run_wrk_command, wrk_executable
from loadtest.bench_search import free_port, import_catalogs, project
from loadtest.children import core_split, spawn_emporium

UNLIMITED = "1000000000/second"
SHOPPER = "bench-shopper"
HOMEPAGE = "/v1/homepage?platform=web"


def wrk(
    url: str,
    *,
    seconds: float,
    connections: int,
    threads: int,
    pid: int,
    headers: dict[str, str],
    cpus: set[int] | None,
) -> WrkResult:
    """One wrk run of a static GET (the reservation bench's script in its GET mode)."""
    cmd = [wrk_executable(), "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s"]
    cmd += ["--timeout", "10s"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd += ["--latency", "-s", str(WRK_SCRIPT), url, "--", "get"]
    return run_wrk_command(cmd, seconds=seconds, server_pid=pid, cpus=cpus)


async def publish_analytics(settings: Settings, base: str) -> None:
    """A trending list and one shopper's recommendations, of products search finds in stock."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        hits = (await client.get("/v1/search", params={"q": "", "size": 100})).json()["hits"]
    ids = [hit["product_id"] for hit in hits]
    trending = TrendingComputed(
        window="hour",
        kind="products",
        window_end=datetime.now(UTC),
        entries=tuple(TrendingEntry(key=pid, score=100.0 - n, count=10) for n, pid in enumerate(ids[:40])),
    )
    recs = RecommendationsComputed(user_id=SHOPPER, product_ids=tuple(ids[50:74]))
    event_log = EVENT_LOG.open(settings.event_log_url)
    await event_log.start()
    try:
        await publish_events(
            event_log,
            [
                new_event(trending, key="trending:products:hour:", revision=1, producer="bench"),
                new_event(recs, key=f"user:{SHOPPER}", revision=1, producer="bench"),
            ],
        )
    finally:
        await event_log.close()


async def wait_for_homepage(base: str, deadline_s: float = 900, settle_s: float = 5.0) -> dict[str, Any]:
    """Until the homepage shows the catalog, the trending list and the shopper's recommendations, and its
    ETag has not changed for ``settle_s`` (the catalog's stock events all projected: no rebuilds due)."""
    deadline = time.monotonic() + deadline_s
    stable_since, last = time.monotonic(), ""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while time.monotonic() < deadline:
            response = await client.get(HOMEPAGE, headers={"X-User-Id": SHOPPER})
            page = response.json()
            sections = {s["id"]: s for s in page.get("sections", [])}
            ready = (
                page.get("personalised")
                and sections["trending"].get("source") == "analytics"
                and sections["new_arrivals"]["items"]
            )
            etag = response.headers.get("etag", "")
            if not ready or etag != last:
                stable_since, last = time.monotonic(), etag
            elif time.monotonic() - stable_since >= settle_s:
                return page
            await asyncio.sleep(0.5)
    raise TimeoutError("the homepage never showed the catalog")


async def builds(base: str) -> float:
    """Homepage documents the server has built so far (its Prometheus metric)."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        text = (await client.get("/metrics")).text
    for row in text.splitlines():
        if row.startswith("emporium_homepage_build_seconds_count"):
            return float(row.split()[-1])
    return 0.0


async def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    def tail() -> str:
        return log.read_text()[-3000:]

    deadline = time.monotonic() + 900
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {tail()}")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise TimeoutError(f"server not ready: {tail()}")


def line(r: dict[str, Any]) -> str:
    h, a, p = r["healthz"], r["homepage"], r["personal"]
    return (
        f"/healthz {h.rps:,.0f} rps p99 {h.p99_ms:.2f} ms cpu {h.server_cpu_us:.0f} us | "
        f"homepage {a.rps:,.0f} rps p50 {a.p50_ms:.2f} p99 {a.p99_ms:.2f} ms "
        f"cpu {a.server_cpu_us:.0f} us ratio {a.rps / h.rps:.2f} | "
        f"personalised {p.rps:,.0f} rps p99 {p.p99_ms:.2f} ms cpu {p.server_cpu_us:.0f} us "
        f"ratio {p.rps / h.rps:.2f} | "
        f"statuses {a.statuses} {p.statuses} | load {r['load']:.2f}"
    )


def measure(base: str, pid: int, args: argparse.Namespace, cpus: set[int] | None) -> list[dict[str, Any]]:
    def run(path: str, seconds: float, headers: dict[str, str] | None = None) -> WrkResult:
        return wrk(
            base + path,
            seconds=seconds,
            connections=args.connections,
            threads=args.threads,
            pid=pid,
            headers=headers or {},
            cpus=cpus,
        )

    run("/healthz", 2)
    run(HOMEPAGE, 2)  # warm-up, not measured
    rounds = []
    for n in range(args.runs):
        result = {
            "healthz": run("/healthz", args.seconds),
            "homepage": run(HOMEPAGE, args.seconds),
            "personal": run(HOMEPAGE, args.seconds, {"X-User-Id": SHOPPER}),
            "load": os.getloadavg()[0],
        }
        rounds.append(result)
        print(f"run {n + 1}: {line(result)}", flush=True)
    return rounds


def summary(args: argparse.Namespace, rounds: list[dict[str, Any]]) -> None:
    def med(kind: str, field: str) -> float:
        return statistics.median(getattr(r[kind], field) for r in rounds)

    ratio = statistics.median(r["homepage"].rps / r["healthz"].rps for r in rounds)
    personal = statistics.median(r["personal"].rps / r["healthz"].rps for r in rounds)
    loads = ", ".join(f"{r['load']:.2f}" for r in rounds)
    print(
        f"GET {HOMEPAGE}, wrk -t{args.threads} -c{args.connections} -d{args.seconds:g}s, "
        f"median of {args.runs}:\n"
        f"  homepage {med('homepage', 'rps'):,.0f} rps, p50 {med('homepage', 'p50_ms'):.2f} ms, "
        f"p99 {med('homepage', 'p99_ms'):.2f} ms (target <= 10 ms), "
        f"server CPU {med('homepage', 'server_cpu_us'):.0f} us/req\n"
        f"  /healthz {med('healthz', 'rps'):,.0f} rps, p99 {med('healthz', 'p99_ms'):.2f} ms, "
        f"server CPU {med('healthz', 'server_cpu_us'):.0f} us/req\n"
        f"  homepage / healthz: {ratio:.2f} (median of per-run ratios; target >= 0.8)\n"
        f"  personalised (X-User-Id) {med('personal', 'rps'):,.0f} rps, "
        f"p99 {med('personal', 'p99_ms'):.2f} ms, server CPU {med('personal', 'server_cpu_us'):.0f} us/req, "
        f"ratio {personal:.2f}\n"
        f"  load average (1 min) per run: {loads}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="per endpoint per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--synthetic-products", type=int, default=20_000, help="without the real datasets")
    parser.add_argument("--no-pin", action="store_true", help="let the scheduler place server and wrk")
    args = parser.parse_args()
    wrk_executable()
    data_dir = Path(tempfile.mkdtemp(prefix="emporium-bench-home-"))
    env = {"EMPORIUM_DATA_DIR": str(data_dir)}
    settings = load_settings(env=env)
    split = None if args.no_pin else core_split()
    server_cpus, wrk_cpus = split if split else (None, None)
    server: subprocess.Popen[bytes] | None = None
    try:
        uvloop.run(import_catalogs(settings, args.synthetic_products))
        uvloop.run(project(settings))
        server_env = {**os.environ, **env, "EMPORIUM_LOG_LEVEL": "warning"}
        server_env["EMPORIUM_RATE_LIMIT_ANONYMOUS"] = UNLIMITED
        for port_url in ("EVENT_LOG", "SEARCH", "CACHE", "DATABASE", "RECOMMENDATIONS"):
            server_env.pop(f"EMPORIUM_{port_url}_URL", None)
        port = free_port()
        log = data_dir / "server.log"
        server = spawn_emporium(
            ["serve", "--port", str(port)], env=server_env, stderr=log.open("wb"), cpus=server_cpus
        )
        base = f"http://127.0.0.1:{port}"
        uvloop.run(wait_ready(base, server, log))
        uvloop.run(publish_analytics(settings, base))
        page = uvloop.run(wait_for_homepage(base))
        shown = sum(len(s["items"]) for s in page["sections"])
        print(f"server ready: the homepage shows {shown} products in {len(page['sections'])} sections")
        if split:
            print(f"# server on cores {sorted(server_cpus or ())}, wrk on {sorted(wrk_cpus or ())}")
        print(f"# machine: {os.cpu_count()} cores; load average before: {os.getloadavg()}")
        built = uvloop.run(builds(base))
        rounds = measure(base, server.pid, args, wrk_cpus)
        built = uvloop.run(builds(base)) - built
        print(f"homepage documents built while measuring: {built:.0f} (rebuilds when older than 60 s)")
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)
    summary(args, rounds)


if __name__ == "__main__":
    main()
