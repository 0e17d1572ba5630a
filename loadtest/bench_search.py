"""Benchmark: ``GET /v1/search`` on the embedded stack with the real catalogs indexed, under skewed traffic.

    python -m loadtest.bench_search [--concurrency 8] [--seconds 5] [--runs 3] [--no-cache]
                                    [--queries 20000] [--zipf 1.0] [--fresh SHARE]
                                    [--steady-after SECONDS] [--stock-outs PER_SECOND]
                                    [--keep | --reuse DIR]

1. Imports bigbasket + myntra (about 40k products) through the ingest profiles into a fresh data dir
   (SQLite event log), with a default stock (the catalogs have no stock columns, and an item without stock
   is out of stock). Without ``../shared/datasets`` it imports the synthetic catalog instead, and says so.
2. Projects the catalog into Tantivy with the search projector in this process and reports events/s.
3. Serves the app (``emporium serve``: uvicorn, asyncio loop, httptools, one worker) in a subprocess and, once
   every consumer has caught up, drives it with ``loadtest.httpload`` at a fixed concurrency, alternately
   ``/healthz`` (the same server's baseline) and searches, several runs each.

The searches are storefront-shaped: ``--queries`` distinct URLs built from every real product name (its
leading 1-3 words; 20% with a typo, 25% with a filter or a sort, 5% a deeper page), ranked by how many
products share the query (common queries first), and requested with Zipf popularity (``--zipf``: the URL
of rank r is requested with weight 1/r^s), as one continuous stream across the runs. The server starts
with a COLD result cache and no warm-up pass over the queries: the cache fills as a real one would, and
every run reports its rendered-page cache hit rate (from ``/metrics``) next to its latency and
throughput. ``--no-cache`` disables the cache (every search goes to the index: the worst case).
``--steady-after S`` first sends the same stream for S seconds without measuring, so the runs see the
cache of a server that has been up a while (how full it gets depends on ``--queries`` and the server's
``EMPORIUM_SEARCH_CACHE_ENTRIES``, both printed). The URL set is finite, so a long warm-up fills the
cache with nearly all of it; ``--fresh SHARE`` mixes in that share of never-repeated searches, the
long tail a real query log keeps bringing.
``--stock-outs R`` publishes R stock-outs per second of random catalog SKUs to the event log while the
searches run (a flash sale emptying shelves; the server projects them as it would inventory's events);
they are restocked at the end, so a kept data dir stays as it was.
``--keep`` keeps the data dir, ``--reuse DIR`` serves it again without importing (no projection number).

Prints per-run numbers and the medians: search p99 (target <= 30 ms), search throughput as a share of
``/healthz`` throughput under the same tool and concurrency (target >= 40%), the cache hit rate, and the
server's CPU time per request (from ``/proc``): on a shared machine wall-clock rates swing with other
load, CPU per request much less, and the throughput ratio is roughly /healthz CPU over search CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import uvloop

from emporium.adapters import EVENT_LOG
from emporium.container import Container, ingest_service
from ingest.service import import_path
from ingest.synthetic import write_csv
from kernel.contracts.events import CATALOG_TOPIC, StockLevelChanged, new_event
from kernel.eventlog.processing import publish_events
from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from kernel.settings import Settings, load_settings
from loadtest.children import cpu_seconds, spawn_emporium
from loadtest.httpload import LoadResult, drive, get, median
from loadtest.queries import SORTS, Corpus, load_corpus, typo
from search.out_of_stock import MemoryOutOfStockSet
from search.projection import SearchProjection
from search.projectors import LIVE_SEARCH_GROUP

ALL_NAMES = 1_000_000  # load_corpus limit: every product name of the catalogs
REQUESTS_PER_SECOND_CAP = 15_000  # sizes each run's slice of the request stream (more than served)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def datasets_dir() -> Path:
    return Path(
        os.environ.get("EMPORIUM_DATASETS_DIR", Path(__file__).resolve().parents[2] / "shared" / "datasets")
    )


CATALOG_STOCK = 1000  # units of each imported product: every item is in stock, as in a shop


async def import_catalogs(settings: Settings, synthetic_products: int) -> int:
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
            report = await import_path(
                service, path, supplier_id=supplier, profile=profile, mode="full", default_stock=CATALOG_STOCK
            )
            print(
                f"  imported {supplier}: {report.accepted} accepted, {report.rejected} rejected "
                f"in {time.perf_counter() - started:.1f}s"
            )
            accepted += report.accepted
    return accepted


async def project(settings: Settings) -> tuple[int, float]:
    container = Container(settings, client_id="bench-search")
    task = ProjectorTask(
        container.event_log(),
        SearchProjection(index=container.search_index(), stock=MemoryOutOfStockSet()),
        group=LIVE_SEARCH_GROUP,
        metrics=ProjectorMetrics.of(container.metrics),
        batch_size=5000,
        poll_timeout=0.05,
    )
    async with container:
        started = time.perf_counter()
        await container.start(task)
        await task.wait_caught_up(poll_s=0.05, timeout_s=600)
        seconds = time.perf_counter() - started
    return task.processor.stats.processed, seconds


async def wait_until_caught_up(settings: Settings, port: int, expected: int) -> None:
    """Every consumer of the catalog in the server (search, inventory feed) is done: no background CPU."""
    event_log = EVENT_LOG.open(settings.event_log_url)
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
        _, body = await get("127.0.0.1", port, "/v1/search?in_stock=false&size=1")
        total = json.loads(body)["total"]
        while True:  # the feed stock's events projected: the catalog is in stock
            _, body = await get("127.0.0.1", port, "/v1/search?size=1")
            if json.loads(body)["total"] >= total:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the catalog's stock never reached search")
            await asyncio.sleep(0.5)
        print(f"server ready: {total} searchable products in stock ({expected} imported)")
    finally:
        await event_log.close()


def ranked_search_urls(corpus: Corpus, count: int, seed: int = 11) -> list[str]:
    """``count`` distinct search URLs, most popular first.

    Base queries are ranked by how many products share them (what many products are called is what many
    shoppers type), ties in a seeded shuffle; each becomes a URL with a 20% chance of a typo, 25% of a
    filter or sort and 5% of a page beyond the first. The base list is cycled until ``count`` distinct
    URLs exist (later cycles draw other typos, filters and pages of the same queries).
    """
    rng = random.Random(seed)
    counts: dict[str, int] = {}
    for q in corpus.queries:
        counts[q] = counts.get(q, 0) + 1
    base = list(counts)
    rng.shuffle(base)
    base.sort(key=lambda q: -counts[q])
    urls: dict[str, None] = {}
    for _ in range(50):
        if len(urls) >= count:
            break
        for q in base:
            if len(urls) >= count:
                break
            urls.setdefault(_search_url(q, corpus, rng))
    return list(urls)


def _search_url(q: str, corpus: Corpus, rng: random.Random) -> str:
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
    if rng.random() < 0.05:
        params["page"] = str(rng.randint(2, 5))
    return "/v1/search?" + urlencode(params)


class RequestStream:
    """An endless Zipf-distributed stream over ranked URLs, consumed run after run.

    With ``fresh`` > 0 that share of the requests are searches never sent before (a real product-name
    query with a price cap no one used yet): the long tail of a real query log, which no cache holds.
    Without it the stream has a finite set of URLs, and a cache that has seen them all answers nearly
    everything.
    """

    def __init__(
        self, urls: list[str], exponent: float, *, fresh: float = 0.0, queries: list[str], seed: int = 13
    ) -> None:
        self.urls = urls
        total = 0.0
        self.cum_weights = []
        for rank in range(1, len(urls) + 1):
            total += 1.0 / rank**exponent
            self.cum_weights.append(total)
        self.fresh = fresh
        self.queries = queries
        self.rng = random.Random(seed)
        self.seen: set[str] = set()
        self._fresh_count = 0

    def take(self, n: int) -> list[str]:
        paths = self.rng.choices(self.urls, cum_weights=self.cum_weights, k=n)
        if self.fresh > 0:
            for i in range(n):
                if self.rng.random() < self.fresh:
                    self._fresh_count += 1
                    q = self.rng.choice(self.queries)
                    paths[i] = "/v1/search?" + urlencode({"q": q, "price_max": 100_000 + self._fresh_count})
        return paths

    def consumed(self, paths: list[str], requests: int) -> None:
        self.seen.update(paths[:requests])


async def cache_counts(port: int) -> dict[str, float]:
    """The server's rendered-page cache counters (``emporium_search_cache_total``) by result."""
    _, body = await get("127.0.0.1", port, "/metrics")
    counts: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith("emporium_search_cache_total{"):
            labels, value = line.rsplit(" ", 1)
            result = labels.split('result="', 1)[1].split('"', 1)[0]
            counts[result] = float(value)
    return counts


def hit_rate(before: dict[str, float], after: dict[str, float]) -> float:
    """Share of searches answered from a rendered page (page_hit among page_hit/page_stale/page_miss)."""
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in ("page_hit", "page_stale", "page_miss")}
    lookups = sum(delta.values())
    return delta["page_hit"] / lookups if lookups else 0.0


async def catalog_skus(port: int) -> list[str]:
    """Every SKU the server can find, paged with the cursor (setup, not measured)."""
    skus: list[str] = []
    params = {"in_stock": "false", "size": "100", "sort": "price_asc"}
    while True:
        _, body = await get("127.0.0.1", port, "/v1/search?" + urlencode(params))
        page = json.loads(body)
        skus += [hit["sku"] for hit in page["hits"]]
        if not page.get("next_cursor"):
            return skus
        params["cursor"] = page["next_cursor"]


class StockOuts:
    """Publishes stock-outs of random SKUs at a steady rate, as inventory would during a flash sale."""

    def __init__(self, event_log_url: str, skus: list[str], per_second: float, seed: int = 17) -> None:
        self.event_log = EVENT_LOG.open(event_log_url, client_id="bench-search-stock-outs")
        self.skus = skus
        self.per_second = per_second
        self.rng = random.Random(seed)
        self.revision = time.time_ns() // 1000  # newer than anything published before
        self.out: list[str] = []

    async def _publish(self, skus: list[str], in_stock: bool) -> None:
        events = []
        for sku in skus:
            self.revision += 1
            quantity = 1 if in_stock else 0
            payload = StockLevelChanged(
                sku=sku,
                on_hand=quantity,
                held=0,
                sold=0,
                available=quantity,
                in_stock=in_stock,
                reason="bench",
            )
            events.append(new_event(payload, key=sku, revision=self.revision, producer="bench"))
        await publish_events(self.event_log, events)

    async def run(self, seconds: float) -> int:
        """Stock-outs for ``seconds``, in ticks of 50 ms; how many were published."""
        started, sent = time.monotonic(), 0
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * self.per_second) - sent
            if due > 0:
                batch = self.rng.sample(self.skus, due)
                await self._publish(batch, in_stock=False)
                self.out += batch
                sent += due
            await asyncio.sleep(0.05)
        return sent

    async def restock_all(self) -> None:
        for start in range(0, len(self.out), 500):
            await self._publish(self.out[start : start + 500], in_stock=True)
        self.out.clear()


@dataclass
class Run:
    search: LoadResult
    healthz: LoadResult
    hit_rate: float
    search_cpu_ms: float  # server CPU per request (all its threads), independent of the machine's load
    healthz_cpu_ms: float
    stock_outs: int = 0


async def _timed(pid: int, port: int, paths: list[str], args: argparse.Namespace) -> tuple[LoadResult, float]:
    cpu = cpu_seconds(pid)
    result = await drive("127.0.0.1", port, paths, concurrency=args.concurrency, seconds=args.seconds)
    return result, (cpu_seconds(pid) - cpu) * 1000 / max(1, result.requests)


async def measure(port: int, pid: int, args: argparse.Namespace, event_log_url: str) -> list[Run]:
    corpus = load_corpus(limit=ALL_NAMES)
    urls = ranked_search_urls(corpus, args.queries)
    stream = RequestStream(urls, args.zipf, fresh=args.fresh, queries=sorted(set(corpus.queries)))
    print(
        f"search mix: {len(urls):,} distinct URLs from {len(set(corpus.queries)):,} distinct queries "
        f"({corpus.source}), Zipf s={args.zipf}, {args.fresh:.0%} first-time searches; "
        + (
            "result cache disabled: every search goes to the index"
            if args.no_cache
            else f"cold result cache of {args.cache_entries:,} entries"
        )
    )
    # warms connections and the server's code paths only: no search is cached before the first run
    await drive("127.0.0.1", port, ["/healthz"], concurrency=args.concurrency, seconds=args.warmup)
    if args.steady_after > 0:
        paths = stream.take(int(args.steady_after * REQUESTS_PER_SECOND_CAP))
        before = await cache_counts(port)
        warm = await drive("127.0.0.1", port, paths, concurrency=args.concurrency, seconds=args.steady_after)
        stream.consumed(paths, warm.requests)
        print(
            f"steady state: {warm.requests:,} searches first, not measured ({args.steady_after:.0f}s, "
            f"cache hits {hit_rate(before, await cache_counts(port)):.0%}, "
            f"distinct URLs so far {len(stream.seen):,})"
        )
    stock_outs = None
    if args.stock_outs > 0:
        stock_outs = StockOuts(event_log_url, await catalog_skus(port), args.stock_outs)
        await stock_outs.event_log.start()
        print(
            f"stock-outs: {args.stock_outs:g}/s of random SKUs among {len(stock_outs.skus):,} during searches"
        )
    runs: list[Run] = []
    try:
        for n in range(1, args.runs + 1):
            h, h_cpu = await _timed(pid, port, ["/healthz"], args)
            paths = stream.take(int(args.seconds * REQUESTS_PER_SECOND_CAP))
            before = await cache_counts(port)
            if stock_outs is None:
                s, s_cpu = await _timed(pid, port, paths, args)
                sold_out = 0
            else:
                (s, s_cpu), sold_out = await asyncio.gather(
                    _timed(pid, port, paths, args), stock_outs.run(args.seconds)
                )
            run = Run(s, h, hit_rate(before, await cache_counts(port)), s_cpu, h_cpu, sold_out)
            stream.consumed(paths, s.requests)
            runs.append(run)
            print(f"run {n}: /healthz  {h.summary()}  server CPU {h_cpu:.3f} ms/req")
            print(
                f"run {n}: /v1/search {s.summary()}  server CPU {s_cpu:.2f} ms/req  "
                f"ratio {s.rps / h.rps:.0%}  cache hits {run.hit_rate:.0%}  "
                f"distinct URLs so far {len(stream.seen):,}  statuses {s.statuses}"
                + (f"  stock-outs {sold_out}" if stock_outs is not None else "")
            )
    finally:
        if stock_outs is not None:
            await stock_outs.restock_all()
            await stock_outs.event_log.close()
    return runs


def parse_args() -> argparse.Namespace:
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
    parser.add_argument("--queries", type=int, default=20_000, help="distinct search URLs in the mix")
    parser.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of URL popularity")
    parser.add_argument(
        "--no-cache", action="store_true", help="disable the result cache (engine-bound numbers)"
    )
    parser.add_argument(
        "--fresh",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of searches that are first-time URLs, never repeated (the long tail); default 0",
    )
    parser.add_argument(
        "--steady-after",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first send the search stream this long without measuring (a server that has been up a "
        "while); default 0: measure from a cold cache",
    )
    parser.add_argument(
        "--stock-outs",
        type=float,
        default=0.0,
        metavar="PER_SECOND",
        help="publish this many stock-outs per second of random SKUs while searches run; default 0",
    )
    return parser.parse_args()


def import_and_project(args: argparse.Namespace, settings: Settings) -> int:
    """Products imported into a fresh data dir, projected into Tantivy here (0 when reusing a data dir)."""
    if args.reuse is not None:
        print(f"reusing {args.reuse} (no import, no projection measured)")
        return 0
    accepted = uvloop.run(import_catalogs(settings, args.synthetic_products))
    events, seconds = uvloop.run(project(settings))
    print(f"projection into Tantivy: {events} events in {seconds:.1f}s = {events / seconds:,.0f} events/s")
    return accepted


def server_environment(args: argparse.Namespace, env: dict[str, str]) -> dict[str, str]:
    """The served app's environment: the embedded stack on the bench's data dir, whatever this shell
    points at; records the cache size it will use in ``args.cache_entries``."""
    server_env = {**os.environ, **env, "EMPORIUM_LOG_LEVEL": "warning"}
    args.cache_entries = 0 if args.no_cache else load_settings(env=server_env).search_cache_entries
    server_env["EMPORIUM_SEARCH_CACHE_ENTRIES"] = str(args.cache_entries)
    for port_url in ("EVENT_LOG", "SEARCH", "CACHE", "DATABASE"):
        server_env.pop(f"EMPORIUM_{port_url}_URL", None)
    return server_env


def print_summary(args: argparse.Namespace, runs: list[Run]) -> None:
    p99 = median([r.search.percentile(99) for r in runs]) * 1000
    p50 = median([r.search.percentile(50) for r in runs]) * 1000
    s_rps = median([r.search.rps for r in runs])
    h_rps = median([r.healthz.rps for r in runs])
    per_run = ", ".join(f"{r.hit_rate:.0%}" for r in runs)
    print()
    print(f"concurrency {args.concurrency}, {args.runs} runs of {args.seconds:.0f}s, medians:")
    print(f"  GET /v1/search  p50 {p50:.2f} ms  p99 {p99:.2f} ms (target <= 30 ms)  {s_rps:,.0f} req/s")
    print(f"  GET /healthz    {h_rps:,.0f} req/s (same server, tool and concurrency)")
    print(f"  search / healthz throughput ratio: {s_rps / h_rps:.0%} (target >= 40%)")
    hits = median([r.hit_rate for r in runs])
    start = f"after {args.steady_after:.0f}s of searches" if args.steady_after > 0 else "cold start"
    if args.stock_outs > 0:
        start += f"; {median([r.stock_outs for r in runs]):.0f} stock-outs per run"
    print(f"  rendered-page cache hit rate: {hits:.0%} (per run: {per_run}; {start})")
    print(
        f"  server CPU per request: search {median([r.search_cpu_ms for r in runs]):.2f} ms, "
        f"/healthz {median([r.healthz_cpu_ms for r in runs]):.3f} ms"
    )


def main() -> None:
    args = parse_args()
    data_dir = args.reuse or Path(tempfile.mkdtemp(prefix="emporium-bench-search-"))
    env = {"EMPORIUM_DATA_DIR": str(data_dir)}
    settings = load_settings(env=env)
    server: subprocess.Popen[bytes] | None = None
    try:
        accepted = import_and_project(args, settings)
        port = free_port()
        server = spawn_emporium(
            ["serve", "--port", str(port)],
            env=server_environment(args, env),
            stderr=open(data_dir / "server.log", "wb"),
        )
        uvloop.run(wait_until_caught_up(settings, port, accepted))
        runs = uvloop.run(measure(port, server.pid, args, settings.event_log_url))
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        if not args.keep and args.reuse is None:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            print(f"data kept in {data_dir}")
    print_summary(args, runs)


if __name__ == "__main__":
    main()
