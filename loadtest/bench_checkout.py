"""Checkout benchmarks: 3-line group reservations on the cluster engine in-process, and cart operations.

    python -m loadtest.bench_checkout [--runs 3] [--checkouts 30000] [--cart-seconds 10] [--clients 200]

Servers: EMPORIUM_CACHE_URL=redis://... and EMPORIUM_DATABASE_URL=mysql://... when set, otherwise a
private Redis + MariaDB from infra/local/stack.py (stopped at the end).

* checkouts: ``ClusterEngine.reserve_many`` of 3 lines (of 30 SKUs, overlapping; 90% of the demand in
  stock, so the last ones are refused) from 2,000 concurrent callers; every granted group is durable in
  MySQL before it is answered. Checked after: no SKU oversold, each SKU's held units are exactly the
  granted groups' lines (no partial group), MySQL's counters agree with its ledger and with Redis.
  Baseline in the same run, alternating with it: single-SKU ``reserve`` (loadtest.bench_inventory).
* cart operations: ``CommerceService`` over the MySQL commerce store, the Redis cart cache and the
  cluster engine's stock (or SQLite, the in-process cache and the embedded engine), in process (no
  HTTP): ``--clients`` shoppers each loop set-a-line / read-the-cart on their own cart for
  ``--cart-seconds`` (and remove a line past 6, untimed); p50/p99 per operation, and when the slowest
  edits started. Each shopper starts after one think pause (``--sync-start``: all at once, a burst).
  The stores are started (the MySQL pool opened) before the clock starts, as a server's are before
  it takes traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis
import uvloop

from commerce.cart_cache import CartCache, MemoryCartCache
from commerce.cart_cache_redis import RedisCartCache
from commerce.domain import Price
from commerce.mysql import MysqlCommerceStore
from commerce.port import PriceUpdate
from commerce.service import CommerceService, Shopper
from commerce.sqlite import SqliteCommerceStore
from emporium.holds import InventoryHolds
from inventory.cluster import ClusterEngine
from inventory.domain import InsufficientStock
from inventory.groups import GroupReserveRequest
from inventory.sqlite import SqliteEngine
from loadtest.bench_inventory import cpu_seconds, engine_rate, server_pids
from loadtest.inventory_audit import audit_mysql, drop_mysql_database, mysql_target, mysql_url_with_database
from loadtest.inventory_stack import fresh_engine, servers, unlink_keys

SKUS = [f"bench:G-{n:02d}" for n in range(30)]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def groups(total: int) -> list[GroupReserveRequest]:
    """3 distinct SKUs per group, rotating over SKUS so every SKU is in ~1/10 of the groups."""
    out = []
    for i in range(total):
        lines = tuple((SKUS[(i + k * 7) % len(SKUS)], 1 + (i + k) % 2) for k in range(3))
        out.append(GroupReserveRequest(lines=lines, customer_id=f"c{i % 50000}", idempotency_key=f"g{i}"))
    return out


async def group_rate(
    redis_url: str, mysql_url: str, total: int, concurrency: int = 2000
) -> tuple[float, dict[str, Any]]:
    pids = server_pids(redis_url, mysql_url)
    requests = groups(total)
    demand: Counter[str] = Counter()
    for r in requests:
        demand.update(dict(r.lines))
    async with fresh_engine(redis_url, mysql_url, "bench_co", sweep_interval=None) as (engine, db_url):
        stock = {sku: demand[sku] * 9 // 10 for sku in SKUS}
        for sku, units in stock.items():
            await engine.set_on_hand(sku, units)
        pending = iter(requests)
        granted: Counter[str] = Counter()
        ok = refused = 0

        async def caller() -> None:
            nonlocal ok, refused
            for request in pending:
                try:
                    held = await engine.reserve_many(request)
                except InsufficientStock:
                    refused += 1
                    continue
                assert [(r.sku, r.quantity) for r in held] == list(request.lines)
                granted.update(dict(request.lines))
                ok += 1

        cpu_before = cpu_seconds(pids)
        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu_after = cpu_seconds(pids)
        oversold = partial = 0
        levels = await engine.stock_levels(SKUS)
        for sku in SKUS:
            audit = audit_mysql(db_url, sku)
            fast = await engine.fast_path_stock(sku)
            assert audit.consistent, (sku, audit)
            assert fast is not None and fast.held == levels[sku].held, (sku, fast, levels[sku])
            oversold += max(0, levels[sku].held - stock[sku])
            partial += abs(levels[sku].held - granted[sku])
        cpu_us = {n: round((cpu_after[n] - cpu_before[n]) * 1e6 / total, 1) for n in cpu_after}
        return total / elapsed, {
            "granted": ok, "refused": refused, "oversold_units": oversold, "partial_units": partial,
            "elapsed_s": round(elapsed, 2), "cpu_us_per_checkout": cpu_us,
        }  # fmt: skip


async def cart_latency(
    redis_url: str,
    mysql_url: str,
    seconds: float,
    clients: int,
    think_s: float,
    embedded: bool = False,
    pool: int = 16,
    sync_start: bool = False,
) -> dict[str, Any]:
    """Cart operations of ``clients`` shoppers (``embedded``: SQLite store and engine, not the cluster).
    With a think time each shopper first pauses as it does between operations, so arrivals are spread
    as in a storefront; ``sync_start``: all of them edit at the same instant first (a burst of
    ``clients`` edits: it measures draining that queue, not the steady state)."""
    db_url = mysql_url_with_database(mysql_url, f"bench_cart_{uuid.uuid4().hex[:8]}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-cart-"))
    engine: Any
    store: Any
    carts: CartCache
    if embedded:
        engine = SqliteEngine(tmp / "emporium.db", sweep_interval=None)
        store = SqliteCommerceStore(tmp / "emporium.db")
        carts = MemoryCartCache()
    else:
        engine = ClusterEngine(redis_url, mysql_target(db_url), sweep_interval=None)
        store = MysqlCommerceStore(mysql_target(db_url), pool_size=pool)
        carts = RedisCartCache.from_url(redis_url, prefix=f"bench:carts:{uuid.uuid4().hex[:8]}")
    pids = server_pids(redis_url, mysql_url) if not embedded else {}
    await engine.start()
    await store.start()
    try:
        skus = [f"bench:C-{n}" for n in range(200)]
        for sku in skus:
            await engine.set_on_hand(sku, 1000)
        await store.put_prices(
            [
                PriceUpdate(s, f"p-{s}", Price(sku=s, product_id=f"p-{s}", price=Decimal("9.99")), 1)
                for s in skus
            ]
        )
        service = CommerceService(store, InventoryHolds(engine), carts=carts)
        timings: dict[str, list[float]] = {"set_line": [], "get_cart": []}
        edits: list[tuple[float, float]] = []  # (start after the run's start, seconds) of each set line
        begin = time.perf_counter()
        deadline = begin + seconds

        async def shopper(n: int) -> None:
            """Set a line, read the cart; carts keep at most 6 lines (a line leaves as the next comes)."""
            i = 0
            if not sync_start:
                await asyncio.sleep(think_s * random.random() * 2)
            while time.perf_counter() < deadline:
                sku = skus[(n * 7 + i) % len(skus)]
                started = time.perf_counter()
                await service.set_item(f"cart-{n}", sku, 1 + i % 3, Shopper())
                timings["set_line"].append(time.perf_counter() - started)
                edits.append((started - begin, timings["set_line"][-1]))
                await asyncio.sleep(think_s * random.random() * 2)
                started = time.perf_counter()
                await service.cart(f"cart-{n}")
                timings["get_cart"].append(time.perf_counter() - started)
                await asyncio.sleep(think_s * random.random() * 2)
                if i >= 5:
                    await service.remove_item(f"cart-{n}", skus[(n * 7 + i - 5) % len(skus)])
                i += 1

        cpu_before = cpu_seconds(pids)
        await asyncio.gather(*(shopper(n) for n in range(clients)))
        cpu_after = cpu_seconds(pids)
        ops = sum(len(v) for v in timings.values())
        out: dict[str, Any] = {
            "cpu_us_per_op": {n: round((cpu_after[n] - cpu_before[n]) * 1e6 / max(1, ops)) for n in cpu_after}
        }
        for name, values in timings.items():
            values.sort()
            out[name] = {
                "ops_s": round(len(values) / seconds),
                "p50_ms": round(values[len(values) // 2] * 1000, 2),
                "p99_ms": round(values[int(len(values) * 0.99)] * 1000, 2),
            }
        slow = sorted(edits, key=lambda e: -e[1])
        out["set_line"]["over_20ms"] = sum(1 for _, d in edits if d > 0.020)
        # when the slowest edits started: clustered at the start (a queue) or spread (a tail)
        out["set_line"]["slowest_s_ms"] = [(round(t, 2), round(d * 1000, 1)) for t, d in slow[:10]]
        return out
    finally:
        await carts.clear()
        await carts.close()
        await store.close()
        await engine.close()
        shutil.rmtree(tmp, ignore_errors=True)
        if not embedded:
            drop_mysql_database(db_url)
            sync = redis.Redis.from_url(redis_url)
            unlink_keys(sync, f"{engine.prefix}:*")
            sync.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--checkouts", type=int, default=30_000)
    parser.add_argument("--reservations", type=int, default=60_000, help="single-SKU baseline per run")
    parser.add_argument("--cart-seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument(
        "--think-ms", type=float, nargs="*", default=[0.0, 100.0], help="mean pause of a shopper between ops"
    )
    parser.add_argument("--skip-carts", action="store_true")
    parser.add_argument("--pool", type=int, default=16, help="connections of the MySQL commerce store")
    parser.add_argument("--cart-stores", nargs="*", default=["mysql", "sqlite"], choices=["mysql", "sqlite"])
    parser.add_argument("--skip-checkouts", action="store_true")
    parser.add_argument(
        "--sync-start", action="store_true", help="every shopper's first edit at once (no initial pause)"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    uvloop.install()
    print(f"# load average before: {os.getloadavg()}", flush=True)
    with servers() as stack:
        if not args.skip_checkouts:
            singles, checkouts = [], []
            for run in range(args.runs):
                single, _ = asyncio.run(engine_rate(stack.redis_url, stack.mysql_url, args.reservations))
                rate, stats = asyncio.run(group_rate(stack.redis_url, stack.mysql_url, args.checkouts))
                singles.append(single)
                checkouts.append(rate)
                load = os.getloadavg()[0]
                print(
                    f"run {run + 1}: single-SKU reserve {single:,.0f}/s | 3-line checkout {rate:,.0f}/s"
                    f" ({rate * 3:,.0f} lines/s) {stats} | load {load:.2f}",
                    flush=True,
                )
            s, c = median(singles), median(checkouts)
            print(
                f"CHECKOUTS (3 lines, all or nothing, durable before ack), median of {args.runs}: {c:,.0f}/s"
                f" ({c * 3:,.0f} lines/s); baseline single-SKU reservations {s:,.0f}/s -> checkouts/s"
                f" {c / s:.2f}x, lines/s {3 * c / s:.2f}x",
                flush=True,
            )
        if not args.skip_carts:
            for kind in args.cart_stores:
                for think in args.think_ms:
                    job = cart_latency(
                        stack.redis_url, stack.mysql_url, args.cart_seconds, args.clients, think / 1000,
                        embedded=kind == "sqlite", pool=args.pool, sync_start=args.sync_start,
                    )  # fmt: skip
                    result = asyncio.run(job)
                    load = os.getloadavg()[0]
                    print(
                        f"CART OPS ({kind}), {args.clients} clients, think {think:g} ms,"
                        f" {args.cart_seconds:g} s, in process: {result} | load {load:.2f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
