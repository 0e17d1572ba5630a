"""``emporium demo``: seed the embedded stack with the synthetic catalog as supplier ``demo``.

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
from ingest.model import FeedReport
from ingest.synthetic import write_csv
from ingest.wiring import import_path, ingest_service
from kernel.settings import Settings

DEMO_SUPPLIER = "demo"
DEMO_SEED = 42


def demo_feed_path(settings: Settings, products: int) -> Path:
    return settings.data_dir / "demo" / f"catalog-{products}-seed{DEMO_SEED}.csv"


def demo_key_path(settings: Settings) -> Path:
    return settings.data_dir / "demo" / "demo-supplier-api-key"


async def _seed(settings: Settings, products: int) -> FeedReport:
    feed = demo_feed_path(settings, products)
    if not feed.exists():
        write_csv(feed, products, seed=DEMO_SEED)
    async with ingest_service(settings) as service:
        if await service.store.get_supplier(DEMO_SUPPLIER) is None:
            _, key = await service.add_supplier(DEMO_SUPPLIER, "Demo Supplier")
            key_file = demo_key_path(settings)
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(key + "\n", encoding="utf-8")
            os.chmod(key_file, 0o600)
            typer.echo(f"created supplier {DEMO_SUPPLIER!r}; its API key (also saved to {key_file}):")
            typer.echo(key)
        return await import_path(service, feed, supplier_id=DEMO_SUPPLIER, profile="canonical", mode="full")


def seed_demo(settings: Settings, products: int = 5000) -> FeedReport:
    """Create supplier ``demo`` if missing, import the synthetic catalog, print the feed report."""
    if products < 1:
        raise typer.BadParameter("products must be at least 1", param_hint="--products")
    report = asyncio.run(_seed(settings, products))
    typer.echo(render_report(report, max_errors=20))
    return report
