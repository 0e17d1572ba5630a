"""Benchmark: how long after a stock-out event is published does the item vanish from ``/v1/search``?

    python -m loadtest.bench_freshness [--cluster] [--samples 40] [--runs 3]

Embedded (default): ``emporium serve`` in a subprocess (SQLite event log, in-process projector,
in-process out-of-stock set, Tantivy). Target p99 <= 200 ms.

``--cluster``: Kafka + Redis. ``emporium serve`` (projectors off) and ``emporium project`` run as separate
processes, as in a deployment; the out-of-stock set is in Redis. Servers come from
``EMPORIUM_EVENT_LOG_URL=kafka://...`` / ``EMPORIUM_CACHE_URL=redis://...`` when set, otherwise they are
started with ``infra.local.stack``. Target p99 <= 1 s.

Each sample publishes one ``StockLevelChanged(in_stock=false)`` from this process and then searches for
the product (its unique title word) back to back until it is gone; the time from before the publish to the
first search without it is the freshness. The baseline printed next to it is the same search's own round
trip (the resolution of the measurement).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import uvloop

from emporium.adapters import EVENT_LOG
from infra.local.stack import LocalStack
from kernel.contracts.events import Product, ProductUpserted, StockLevelChanged, new_event
from kernel.eventlog.processing import publish_events
from loadtest.bench_search import free_port
from loadtest.children import spawn_emporium
from loadtest.httpload import get, median

PRODUCTS = 400


def word(n: int) -> str:
    """A unique, pronounceable, dictionary-free title word per product (no typo-neighbours)."""
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    out = []
    for _ in range(4):
        n, c = divmod(n, len(consonants))
        n, v = divmod(n, len(vowels))
        out.append(consonants[c] + vowels[v])
    return "".join(out)


def sku(n: int) -> str:
    return f"fresh:FRESH-{n}"  # supplier-scoped, as ingest publishes it


def catalog() -> list[Any]:
    """The probe products and the stock events that put them in stock (an item is in stock only once
    inventory says so)."""
    events = []
    for n in range(PRODUCTS):
        product = Product(
            product_id=f"fresh:{n}",
            supplier_id="fresh",
            sku=sku(n),
            title=f"Freshness probe {word(n * 7919)}",
            brand="Probe",
            category_path=("Bench",),
            price=Decimal(100),
        )
        events.append(
            new_event(ProductUpserted(product=product), key=product.product_id, revision=1, producer="b")
        )
        stocked = StockLevelChanged(sku=sku(n), on_hand=1, held=0, sold=0, available=1, in_stock=True)
        events.append(new_event(stocked, key=sku(n), revision=1, producer="b"))
    return events


def stock_out(n: int, revision: int) -> Any:
    payload = StockLevelChanged(sku=sku(n), on_hand=0, held=0, sold=0, available=0, in_stock=False)
    return new_event(payload, key=sku(n), revision=revision, producer="bench")


def search_path(n: int) -> str:
    return "/v1/search?" + urlencode({"q": f"probe {word(n * 7919)}", "size": 5})


async def skus(port: int, n: int) -> list[str]:
    status, body = await get("127.0.0.1", port, search_path(n))
    if status != 200:
        raise RuntimeError(f"search failed: {status} {body[:200]!r}")
    return [h["sku"] for h in json.loads(body)["hits"]]


async def wait_ready(port: int, deadline_s: float = 300) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            status, body = await get("127.0.0.1", port, "/v1/search?q=probe&size=1")  # in stock
            if status == 200 and json.loads(body)["total"] >= PRODUCTS:
                return
        except (OSError, ValueError, KeyError):
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError("catalog never became searchable")


async def measure(event_log_url: str, port: int, args: argparse.Namespace) -> list[tuple[float, float]]:
    """Per run: (p99 freshness, median search round trip)."""
    event_log = EVENT_LOG.open(event_log_url, client_id="bench-freshness")
    await event_log.start()
    runs: list[tuple[float, float]] = []
    try:
        await publish_events(event_log, catalog())
        await wait_ready(port)
        revision = time.time_ns() // 1000  # newer than anything published before
        n = 0
        for run in range(1, args.runs + 1):
            delays: list[float] = []
            round_trips: list[float] = []
            for _ in range(args.samples):
                n += 1
                revision += 1
                t0 = time.perf_counter()
                await skus(port, n)
                round_trips.append(time.perf_counter() - t0)
                started = time.perf_counter()
                await publish_events(event_log, [stock_out(n, revision)])
                while sku(n) in await skus(port, n):
                    if time.perf_counter() - started > 10:
                        raise TimeoutError(f"{sku(n)} still searchable after 10 s")
                delays.append(time.perf_counter() - started)
                await asyncio.sleep(0.02)
            ordered = sorted(delays)
            p50, p99 = ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
            rt = median(round_trips)
            print(
                f"run {run}: freshness p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
                f"max {ordered[-1] * 1000:7.1f} ms   (search round trip median {rt * 1000:.1f} ms)"
            )
            runs.append((p99, rt))
    finally:
        await event_log.close()
    return runs


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return spawn_emporium(cmd, env=env, stderr=log.open("wb"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cluster", action="store_true", help="Kafka + Redis instead of the embedded stack")
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="emporium-bench-fresh-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMPORIUM_")}
    env.update(EMPORIUM_DATA_DIR=str(data_dir), EMPORIUM_LOG_LEVEL="warning")
    processes: list[subprocess.Popen[bytes]] = []
    stack = None
    port = free_port()
    try:
        if args.cluster:
            kafka = os.environ.get("EMPORIUM_EVENT_LOG_URL", "")
            redis = os.environ.get("EMPORIUM_CACHE_URL", "")
            if not kafka.startswith("kafka://") or not redis.startswith("redis://"):
                stack = LocalStack(data_dir / "stack")
                kafka = kafka if kafka.startswith("kafka://") else stack.ensure("kafka")
                redis = redis if redis.startswith("redis://") else stack.ensure("redis")
            env.update(
                EMPORIUM_EVENT_LOG_URL=kafka,
                EMPORIUM_CACHE_URL=redis,
                EMPORIUM_INPROCESS_PROJECTORS="false",
            )
            print(f"cluster: {kafka}, {redis}; serve and `emporium project` in separate processes")
            processes.append(start(["project"], env, data_dir / "project.log"))
        else:
            print("embedded: SQLite event log, in-process projector and out-of-stock set, Tantivy")
        processes.append(start(["serve", "--port", str(port)], env, data_dir / "serve.log"))
        event_log_url = env.get("EMPORIUM_EVENT_LOG_URL", f"sqlite:///{data_dir / 'events.db'}")
        runs = uvloop.run(measure(event_log_url, port, args))
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        if stack is not None:
            stack.stop_all()
        shutil.rmtree(data_dir, ignore_errors=True)

    target = 1.0 if args.cluster else 0.2
    p99 = median([r[0] for r in runs])
    rt = median([r[1] for r in runs])
    print()
    stack_name = "Kafka + Redis" if args.cluster else "embedded"
    print(f"{stack_name}: {args.runs} runs x {args.samples} stock-outs, medians:")
    print(f"  freshness p99 {p99 * 1000:.1f} ms (target <= {target * 1000:.0f} ms; {p99 / target:.0%} of it)")
    print(f"  baseline: one search round trip {rt * 1000:.1f} ms")


if __name__ == "__main__":
    main()
