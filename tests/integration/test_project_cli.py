"""``emporium project`` as an operator runs it (a child process on an embedded data dir): it projects
recommendation result events into the recommendations store until SIGTERM, and says that an in-process
trending store is left to the serving processes (each follows the trending topic itself)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from litestar.testing import AsyncTestClient

from commerce.prices import PRICES_GROUP
from emporium.adapters import RECOMMENDATIONS_STORE
from emporium.app import create_app
from inventory.events import FEED_GROUP
from kernel.contracts.events import (
    CATALOG_TOPIC,
    PopularProductsComputed,
    Product,
    ProductUpserted,
    RelatedProductsComputed,
    new_event,
)
from kernel.eventlog.processing import publish_events
from kernel.eventlog.sqlite import SqliteEventLog
from kernel.settings import load_settings

WITHIN_S = 30.0


async def test_project_writes_related_and_popular_lists(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    log = SqliteEventLog.from_url(f"sqlite:///{data / 'events.db'}")
    await log.start()
    emporium = str(Path(sys.executable).parent / "emporium")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EMPORIUM_")},
        "EMPORIUM_DATA_DIR": str(data),
        "EMPORIUM_LOG_FORMAT": "console",
    }
    proc = await asyncio.create_subprocess_exec(
        emporium, "project", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    store = RECOMMENDATIONS_STORE.open(f"sqlite:///{data / 'recommendations.db'}")
    try:
        related = RelatedProductsComputed(product_id="s:1", product_ids=("s:2", "s:3"))
        popular = PopularProductsComputed(product_ids=("s:9",), region="south")
        await publish_events(
            log,
            [
                new_event(related, key="related:s:1", revision=1, producer="t"),
                new_event(popular, key="popular:south", revision=1, producer="t"),
            ],
        )
        deadline = time.monotonic() + WITHIN_S
        while not (data / "recommendations.db").exists():
            assert proc.returncode is None and time.monotonic() < deadline
            await asyncio.sleep(0.1)
        await store.start()
        while (await store.get_related("s:1")) is None or (await store.get_popular("south")) is None:
            assert proc.returncode is None, "emporium project exited"
            assert time.monotonic() < deadline, f"not projected within {WITHIN_S}s"
            await asyncio.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        output = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
        await store.close()
        await log.close()
    assert proc.returncode == 0, output
    assert "trending store is in-process" in output


async def test_project_takes_feed_stock_in_and_serve_leaves_it_alone(tmp_path: Path) -> None:
    """Inventory's feed consumer and commerce's price list run where the projectors run: in ``emporium
    project`` when they run out of process (a serving process then neither joins their groups nor waits
    for them to be ready)."""
    data = tmp_path / "data"
    data.mkdir()
    log = SqliteEventLog.from_url(f"sqlite:///{data / 'events.db'}")
    await log.start()
    product = Product(
        product_id="p:1", supplier_id="p", sku="S-1", title="T", price=Decimal(1), stock={"a": 7}
    )
    await publish_events(
        log, [new_event(ProductUpserted(product=product), key="p:1", revision=1, producer="t")]
    )
    settings = load_settings(env={"EMPORIUM_DATA_DIR": str(data), "EMPORIUM_INPROCESS_PROJECTORS": "false"})
    async with AsyncTestClient(create_app(settings)) as client:  # a serving process: not in the group
        deadline = time.monotonic() + WITHIN_S
        while (ready := await client.get("/readyz")).status_code != 200:  # e.g. the price list catching up
            assert time.monotonic() < deadline, ready.text
            await asyncio.sleep(0.1)
        checks = ready.json()["checks"]
        assert not {"inventory.stock_feed", "commerce.prices"} & set(checks), ready.text
    assert await log.lag(CATALOG_TOPIC, FEED_GROUP) == 1
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "emporium"), "project",
        env={**{k: v for k, v in os.environ.items() if not k.startswith("EMPORIUM_")},
             "EMPORIUM_DATA_DIR": str(data), "EMPORIUM_LOG_FORMAT": "console"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + WITHIN_S
        while _on_hand(data / "emporium.db", "p:S-1") != 7 or not _priced(data / "emporium.db", "p:S-1"):
            assert proc.returncode is None, "emporium project exited"
            assert time.monotonic() < deadline, f"feed stock not taken in within {WITHIN_S}s"
            await asyncio.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        output = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
        await log.close()
    assert proc.returncode == 0, output
    assert FEED_GROUP in output and PRICES_GROUP in output  # among the groups it runs


def _on_hand(db: Path, sku: str) -> int | None:
    if not db.exists():
        return None
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            row = conn.execute("SELECT on_hand FROM inv_stock WHERE sku = ?", (sku,)).fetchone()
        except sqlite3.OperationalError:  # not migrated yet
            return None
    return None if row is None else int(row[0])


def _priced(db: Path, sku: str) -> bool:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            return conn.execute("SELECT 1 FROM commerce_prices WHERE sku = ?", (sku,)).fetchone() is not None
        except sqlite3.OperationalError:  # not migrated yet
            return False
