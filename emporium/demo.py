"""``emporium demo``: seed the embedded stack with the synthetic catalog as supplier ``demo``, and make a
storefront ``demo`` whose key the README's reservations send.

Idempotent and fast on re-runs: the feed file is generated once per size (deterministic), and
importing an unchanged feed publishes nothing. The import runs in ``full`` mode, so asking for fewer
products than last time removes the surplus.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import typer

from emporium.cli.feeds import render_report
from emporium.container import Container, ingest_service
from ingest.model import FeedReport
from ingest.service import import_path
from ingest.synthetic import write_csv
from inventory.events import FeedStockConsumer
from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from kernel.settings import Settings
from search.projection import SearchProjection
from search.projectors import LIVE_SEARCH_GROUP

DEMO_SUPPLIER = "demo"
DEMO_STOREFRONT = "demo"
DEMO_SEED = 42
CATCH_UP_TIMEOUT_S = 300.0


def demo_feed_path(settings: Settings, products: int) -> Path:
    return settings.data_dir / "demo" / f"catalog-{products}-seed{DEMO_SEED}.csv"


def demo_key_path(settings: Settings) -> Path:
    return settings.data_dir / "demo" / "demo-supplier-api-key"


def demo_storefront_key_path(settings: Settings) -> Path:
    return settings.data_dir / "demo" / "storefront-api-key"


def _save_key(path: Path, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n", encoding="utf-8")
    os.chmod(path, 0o600)


async def _seed(settings: Settings, products: int) -> FeedReport:
    feed = demo_feed_path(settings, products)
    if not feed.exists():
        write_csv(feed, products, seed=DEMO_SEED)
    async with ingest_service(settings) as service:
        if await service.store.get_supplier(DEMO_SUPPLIER) is None:
            _, key = await service.add_supplier(DEMO_SUPPLIER, "Demo Supplier")
            key_file = demo_key_path(settings)
            _save_key(key_file, key)
            typer.echo(f"created supplier {DEMO_SUPPLIER!r}; its API key (also saved to {key_file}):")
            typer.echo(key)
        if await service.store.get_storefront(DEMO_STOREFRONT) is None:
            _, key = await service.identities.add_storefront(DEMO_STOREFRONT, "Demo Storefront")
            key_file = demo_storefront_key_path(settings)
            _save_key(key_file, key)
            typer.echo(
                f"created storefront {DEMO_STOREFRONT!r}; its API key for reservations "
                f"(X-Api-Key; also saved to {key_file}):"
            )
            typer.echo(key)
        return await import_path(service, feed, supplier_id=DEMO_SUPPLIER, profile="canonical", mode="full")


def seed_demo(settings: Settings, products: int = 5000) -> FeedReport:
    """Create supplier and storefront ``demo`` if missing, import the synthetic catalog, print the report."""
    if products < 1:
        raise typer.BadParameter("products must be at least 1", param_hint="--products")
    report = asyncio.run(_seed(settings, products))
    typer.echo(render_report(report, max_errors=20))
    return report


async def index_demo(settings: Settings) -> None:
    """Project the freshly imported catalog into the search index and its feed stock into the inventory,
    so the very first search finds it and the very first reservation of it succeeds.

    ``serve`` would get there on its own a moment later (its in-process consumers resume from the same
    consumer groups); doing it first makes the demo deterministic for scripts that start right away.
    """
    container = Container(settings, client_id="emporium-demo")
    event_log = container.event_log()
    projection = SearchProjection(index=container.search_index(), stock=container.out_of_stock_set())
    feed = FeedStockConsumer(container.inventory_engine(), event_log)
    search = ProjectorTask(
        event_log,
        projection,
        group=LIVE_SEARCH_GROUP,
        metrics=ProjectorMetrics.of(container.metrics),
        poll_timeout=0.05,
    )
    async with container:
        await container.start(search)
        await container.start(feed)
        await asyncio.gather(
            search.wait_caught_up(poll_s=0.05, timeout_s=CATCH_UP_TIMEOUT_S),
            feed.wait_caught_up(timeout_s=CATCH_UP_TIMEOUT_S),
        )
