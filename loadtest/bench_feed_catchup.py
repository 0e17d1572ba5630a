"""How fast the feed-stock consumer (group ``inventory-feed``) catches up after a restart, embedded.

    python -m loadtest.bench_feed_catchup [--events 15000] [--products 5000] [--all-change] [--profile]

Publishes ``--events`` catalog events (``ProductUpserted`` of ``--products`` products, about a third
of them with a stock change, the rest price-only; ``--all-change``: every one) to a fresh SQLite event
log, then runs the consumer over a fresh SQLite engine until it has taken them all in. Prints events per
wall second and per CPU second of this process (the consumer, the engine's writer thread and the log all
run in it). "Stock changes applied" counts SKU writes: a batch keeps only the newest revision of a SKU.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from inventory.events import FeedStockConsumer
from inventory.sqlite import SqliteEngine
from kernel.contracts.events import Envelope, Product, ProductUpserted, new_event
from kernel.eventlog.processing import publish_events
from kernel.eventlog.sqlite import SqliteEventLog


def catalog_events(events: int, products: int, *, all_change: bool = False) -> list[Envelope]:
    out: list[Envelope] = []
    revisions: dict[int, int] = {}
    for i in range(events):
        p = i % products
        revision = revisions[p] = revisions.get(p, 0) + 1
        quantity = 10 + (revision if all_change else revision // 3)  # a stock change every third revision
        product = Product(
            product_id=f"bench-{p}",
            supplier_id="bench",
            sku=f"SKU-{p}",
            title=f"Product {p}",
            price=Decimal(100 + revision),
            stock={"north": quantity, "south": 3},
        )
        out.append(new_event(ProductUpserted(product=product), key=product.product_id, revision=revision,
                             producer="bench"))  # fmt: skip
    return out


async def catch_up(folder: Path, events: int, products: int, all_change: bool) -> tuple[float, float, int]:
    log = SqliteEventLog.from_url(f"sqlite:///{folder}/events.db")
    await log.start()
    batch = catalog_events(events, products, all_change=all_change)
    for start in range(0, len(batch), 2000):
        await publish_events(log, batch[start : start + 2000])
    engine = SqliteEngine(folder / "inv.db", sweep_interval=None)
    await engine.start()
    feed = FeedStockConsumer(engine, log)
    wall, cpu = time.perf_counter(), time.process_time()
    feed.start()
    await feed.wait_caught_up(timeout_s=600)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await feed.stop()
    applied = feed.applied
    await engine.close()
    await log.close()
    return wall, cpu, applied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=15_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--all-change", action="store_true", help="every event changes its product's stock")
    parser.add_argument("--profile", action="store_true", help="cProfile the run (top 25 by cumulative time)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        wall, cpu, applied = asyncio.run(catch_up(Path(tmp), args.events, args.products, args.all_change))
        if profiler is not None:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    print(
        f"{args.events} catalog events ({applied} stock changes applied): "
        f"{wall:.2f} s wall, {cpu:.2f} s CPU; "
        f"{args.events / wall:,.0f} events/s, {args.events / cpu:,.0f} events per CPU-second"
    )


if __name__ == "__main__":
    main()
