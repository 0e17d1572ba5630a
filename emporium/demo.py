"""``emporium demo``: seed the embedded stack with the synthetic catalog as supplier ``demo``, and make a
storefront ``demo`` whose key the README's reservations send.

Idempotent and fast on re-runs, and it never touches what a user pushed as supplier ``demo``: only the
synthetic products the ingest store has never seen are imported (in ``delta`` mode), so a re-run neither
removes the products a user added nor reverts the ones a user changed or removed. Asking for more
products than last time adds the new ones; asking for fewer removes nothing.
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import typer

from emporium.cli.feeds import render_report
from emporium.container import Container, ingest_service
from ingest.model import FeedReport
from ingest.parsing import FeedFormat
from ingest.synthetic import generate_products, write_csv_rows
from inventory.events import FeedStockConsumer, OutboxRelay
from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from kernel.settings import Settings
from search.projection import SearchProjection
from search.projectors import LIVE_SEARCH_GROUP

DEMO_SUPPLIER = "demo"
DEMO_STOREFRONT = "demo"
DEMO_SEED = 42
CATCH_UP_TIMEOUT_S = 300.0


def demo_key_path(settings: Settings) -> Path:
    return settings.data_dir / "demo" / "demo-supplier-api-key"


def demo_storefront_key_path(settings: Settings) -> Path:
    return settings.data_dir / "demo" / "storefront-api-key"


def _save_key(path: Path, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n", encoding="utf-8")
    os.chmod(path, 0o600)


async def _seed(settings: Settings, products: int) -> FeedReport | None:
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
        catalog = list(generate_products(products, seed=DEMO_SEED))
        ids = [f"{DEMO_SUPPLIER}:{p['product_id']}" for p in catalog]
        known = await service.store.product_states(DEMO_SUPPLIER, ids)  # removed ones too: left alone
        new = [p for p, product_id in zip(catalog, ids, strict=True) if product_id not in known]
        if not new:
            return None
        feed = io.StringIO(newline="")
        write_csv_rows(feed, new)
        body = io.BytesIO(feed.getvalue().encode())
        return await service.import_feed(DEMO_SUPPLIER, body, fmt=FeedFormat.CSV, mode="delta")


def seed_demo(settings: Settings, products: int = 5000) -> FeedReport | None:
    """Create supplier and storefront ``demo`` if missing, import the synthetic products the supplier does
    not have yet and print the feed report; None (and a line saying so) when it has them all."""
    if products < 1:
        raise typer.BadParameter("products must be at least 1", param_hint="--products")
    report = asyncio.run(_seed(settings, products))
    if report is None:
        typer.echo(f"the demo catalog is already imported ({products} products): nothing to import")
    else:
        typer.echo(render_report(report, max_errors=20))
    return report


async def index_demo(settings: Settings) -> None:
    """Project the freshly imported catalog into the search index, its feed stock into the inventory and
    the inventory's stock events back into search, so the very first search finds the demo's items in
    stock and the very first reservation of one succeeds (an item is in stock only once inventory says so).

    ``serve`` would get there on its own a moment later (its in-process consumers resume from the same
    consumer groups); doing it first makes the demo deterministic for scripts that start right away.
    """
    container = Container(settings, client_id="emporium-demo", inventory_options={"sweep_interval": None})
    event_log = container.event_log()
    engine = container.inventory_engine()
    projection = SearchProjection(index=container.search_index(), stock=container.out_of_stock_set())
    feed = FeedStockConsumer(engine, event_log)
    relay = OutboxRelay(engine, event_log)
    engine.on_outbox = relay.notify
    search = ProjectorTask(
        event_log,
        projection,
        group=LIVE_SEARCH_GROUP,
        metrics=ProjectorMetrics.of(container.metrics),
        poll_timeout=0.05,
    )
    async with container:
        await container.start(search)
        await container.start(relay)
        await container.start(feed)
        await feed.wait_caught_up(timeout_s=CATCH_UP_TIMEOUT_S)
        while await relay.drain_once():  # the stock events of what the feed consumer took in
            pass
        await search.wait_caught_up(poll_s=0.05, timeout_s=CATCH_UP_TIMEOUT_S)
