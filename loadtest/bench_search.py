"""Benchmark: ``GET /v1/search`` on the embedded stack with the real catalogs indexed.

    python -m loadtest.bench_search [--concurrency 8] [--seconds 5] [--runs 3] [--no-cache]
                                    [--keep | --reuse DIR]

1. Imports bigbasket + myntra (about 40k products) through the ingest profiles into a fresh data dir
   (SQLite event log). Without ``../shared/datasets`` it imports the synthetic catalog instead, and says so.
2. Projects the catalog into Tantivy with the search projector in this process and reports events/s.
3. Serves the app (``emporium serve``: uvicorn, uvloop, httptools, one worker) in a subprocess and, once
   every consumer has caught up, drives it with ``loadtest.httpload`` at a fixed concurrency: alternately
   ``/healthz`` (the same server's baseline) and a realistic search mix (``--queries`` distinct URLs of real
   product-name queries, 20% with a typo, 25% with a filter or a sort), several runs each. By default the
   result cache is warmed by one pass over the mix first (steady state of a storefront whose queries
   repeat: rendered pages are reused while the live out-of-stock set agrees with every item they examined,
   so the stock check still runs per request); ``--no-cache`` measures every search against the index.
   ``--keep`` keeps the data dir, ``--reuse DIR`` serves it again without importing (no projection number).

Prints per-run numbers and the medians: search p99 (target <= 30 ms) and search throughput as a share of
``/healthz`` throughput under the same tool and concurrency (target >= 40%).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from emporium.settings import Settings
from loadtest.httpload import LoadResult, drive, get, median
from loadtest.queries import SORTS, load_corpus, typo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def datasets_dir() -> Path:
    return Path(
        os.environ.get("EMPORIUM_DATASETS_DIR", Path(__file__).resolve().parents[2] / "shared" / "datasets")
    )


async def import_catalogs(settings: Settings, synthetic_products: int) -> int:
    from ingest.synthetic import write_csv
    from ingest.wiring import import_path, ingest_service

    data = datasets_dir()
    feeds: list[tuple[str, Path, str]] = []
    if (data / "bigbasket_products.csv").is_file() and (data / "myntra_products.csv").is_file():
        feeds = [
            ("bigbasket", data / "bigbasket_products.csv", "bigbasket"),
            ("myntra", data / "myntra_products.csv", "myntra"),
        ]
        print(f"catalogs: bigbasket + myntra from {data}")
    else:
        path = settings.data_dir / "synthetic.csv"
        write_csv(path, synthetic_products, seed=42)
        feeds = [("synthetic", path, "canonical")]
        print(f"catalogs: {data} not found; using {synthetic_products} synthetic products instead")
    accepted = 0
    async with ingest_service(settings) as service:
        for supplier, path, profile in feeds:
            await service.add_supplier(supplier, supplier)
            started = time.perf_counter()
            report = await import_path(service, path, supplier_id=supplier, profile=profile, mode="full")
            print(
                f"  imported {supplier}: {report.accepted} accepted, {report.rejected} rejected "
                f"in {time.perf_counter() - started:.1f}s"
            )
            accepted += report.accepted
    return accepted


async def project(settings: Settings) -> tuple[int, float]:
    from prometheus_client import CollectorRegistry

    from emporium.eventlog.factory import open_event_log
    from read_models.out_of_stock import MemoryOutOfStockSet
    from read_models.projectors import LIVE_SEARCH_GROUP, ProjectorMetrics, ProjectorTask
    from read_models.search_projector import SearchProjection
    from search.factory import open_search_index

    event_log = open_event_log(settings.event_log_url)
    index = open_search_index(settings.search_url)
    await event_log.start()
    await index.ensure_index()
    task = ProjectorTask(
        event_log,
        SearchProjection(index=index, stock=MemoryOutOfStockSet()),
        group=LIVE_SEARCH_GROUP,
        metrics=ProjectorMetrics.of(CollectorRegistry()),
        batch_size=5000,
        poll_timeout=0.05,
    )
    started = time.perf_counter()
    task.start()
    await task.wait_caught_up(poll_s=0.05, timeout_s=600)
    seconds = time.perf_counter() - started
    events = task.processor.stats.processed
    await task.stop()
    await index.close()
    await event_log.close()
    return events, seconds


async def wait_until_caught_up(settings: Settings, port: int, expected: int) -> None:
    """Every consumer of the catalog in the server (search, inventory feed) is done: no background CPU."""
    from emporium.contracts.events import CATALOG_TOPIC
    from emporium.eventlog.factory import open_event_log

    event_log = open_event_log(settings.event_log_url)
    await event_log.start()
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                status, _ = await get("127.0.0.1", port, "/healthz")
            except OSError:
                status = 0
            if status == 200:
                lags = [
                    await event_log.lag(CATALOG_TOPIC, g) for g in ("read-models.search", "inventory-feed")
                ]
                if not any(lags):
                    break
            await asyncio.sleep(0.5)
        else:
            raise TimeoutError("server did not catch up")
        import json

        _, body = await get("127.0.0.1", port, "/v1/search?in_stock=false&size=1")
        total = json.loads(body)["total"]
        print(f"server ready: {total} searchable products ({expected} imported)")
    finally:
        await event_log.close()


def search_paths(count: int = 2000, seed: int = 11) -> list[str]:
    corpus = load_corpus()
    rng = random.Random(seed)
    paths = []
    for _ in range(count):
        q = rng.choice(corpus.queries)
        if rng.random() < 0.2:
            words = q.split()
            j = rng.randrange(len(words))
            words[j] = typo(words[j], rng)
            q = " ".join(words)
        params: dict[str, str] = {"q": q}
        roll = rng.random()
        if roll < 0.08 and corpus.categories:
            params["category"] = rng.choice(corpus.categories)
        elif roll < 0.14:
            params.update(price_min="100", price_max="1000")
        elif roll < 0.18:
            params["rating_min"] = "4"
        elif roll < 0.25:
            params["sort"] = rng.choice(SORTS[1:])
        paths.append("/v1/search?" + urlencode(params))
    return paths


async def measure(port: int, args: argparse.Namespace) -> tuple[list[LoadResult], list[LoadResult]]:
    paths = search_paths(args.queries)
    if args.no_cache:
        print("result cache disabled: every search goes to the index")
    else:
        print(f"warm-up: one pass over the {len(paths)} searches (fills the result cache) ...")
        started = time.perf_counter()
        for i in range(0, len(paths), 64):
            await asyncio.gather(*(get("127.0.0.1", port, p) for p in paths[i : i + 64]))
        print(f"  done in {time.perf_counter() - started:.1f}s")
    await drive("127.0.0.1", port, paths, concurrency=args.concurrency, seconds=args.warmup)
    searches: list[LoadResult] = []
    healthz: list[LoadResult] = []
    for run in range(1, args.runs + 1):
        h = await drive("127.0.0.1", port, ["/healthz"], concurrency=args.concurrency, seconds=args.seconds)
        s = await drive("127.0.0.1", port, paths, concurrency=args.concurrency, seconds=args.seconds)
        healthz.append(h)
        searches.append(s)
        print(f"run {run}: /healthz  {h.summary()}")
        print(f"run {run}: /v1/search {s.summary()}  ratio {s.rps / h.rps:.0%}  statuses {s.statuses}")
    return searches, healthz


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--synthetic-products", type=int, default=40_000)
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="serve a data dir kept by an earlier --keep run (skips the import and the projection)",
    )
    parser.add_argument("--queries", type=int, default=2000, help="distinct search URLs in the mix")
    parser.add_argument(
        "--no-cache", action="store_true", help="disable the result cache (engine-bound numbers)"
    )
    args = parser.parse_args()

    import uvloop

    from emporium.settings import load_settings

    data_dir = args.reuse or Path(tempfile.mkdtemp(prefix="emporium-bench-search-"))
    env = {"EMPORIUM_DATA_DIR": str(data_dir)}
    settings = load_settings(env=env)
    server: subprocess.Popen[bytes] | None = None
    try:
        if args.reuse is None:
            accepted = uvloop.run(import_catalogs(settings, args.synthetic_products))
            events, seconds = uvloop.run(project(settings))
            print(
                f"projection into Tantivy: {events} events in {seconds:.1f}s = "
                f"{events / seconds:,.0f} events/s"
            )
        else:
            accepted = 0
            print(f"reusing {data_dir} (no import, no projection measured)")

        port = free_port()
        server_env = {**os.environ, **env, "EMPORIUM_LOG_LEVEL": "warning"}
        if args.no_cache:
            server_env["EMPORIUM_SEARCH_CACHE_ENTRIES"] = "0"
        server_env.pop("EMPORIUM_EVENT_LOG_URL", None)
        server_env.pop("EMPORIUM_SEARCH_URL", None)
        server_env.pop("EMPORIUM_CACHE_URL", None)
        server_env.pop("EMPORIUM_DATABASE_URL", None)
        server = subprocess.Popen(
            [sys.executable, "-c", "from emporium.cli import main; main()", "serve", "--port", str(port)],
            env=server_env,
            stdout=subprocess.DEVNULL,
            stderr=open(data_dir / "server.log", "wb"),
        )
        uvloop.run(wait_until_caught_up(settings, port, accepted))
        searches, healthz = uvloop.run(measure(port, args))
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        if not args.keep and args.reuse is None:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            print(f"data kept in {data_dir}")

    p99 = median([s.percentile(99) for s in searches]) * 1000
    p50 = median([s.percentile(50) for s in searches]) * 1000
    s_rps = median([s.rps for s in searches])
    h_rps = median([h.rps for h in healthz])
    print()
    print(f"concurrency {args.concurrency}, {args.runs} runs of {args.seconds:.0f}s, medians:")
    print(f"  GET /v1/search  p50 {p50:.2f} ms  p99 {p99:.2f} ms (target <= 30 ms)  {s_rps:,.0f} req/s")
    print(f"  GET /healthz    {h_rps:,.0f} req/s (same server, tool and concurrency)")
    print(f"  search / healthz throughput ratio: {s_rps / h_rps:.0%} (target >= 40%)")


if __name__ == "__main__":
    main()
