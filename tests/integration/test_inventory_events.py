"""Stock events end to end: supplier-feed stock in through the catalog topic (consumer group
``inventory-feed``), movements out through the transactional outbox to the inventory topic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from inventory_support import drop_mysql_database, mysql_target, mysql_url_with_database, unique_name

from inventory.cluster import ClusterEngine
from inventory.domain import ReserveRequest
from inventory.events import FeedStockConsumer, OutboxRelay
from inventory.sqlite import SqliteEngine
from kernel.contracts.events import (
    INVENTORY_TOPIC,
    Product,
    ProductUpserted,
    RestockAlert,
    StockLevelChanged,
    decode_event,
    new_event,
)
from kernel.eventlog.processing import publish_events
from kernel.eventlog.sqlite import SqliteEventLog


@pytest.fixture(params=["sqlite", pytest.param("cluster", marks=pytest.mark.cluster)])
async def wired(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Any, SqliteEventLog]]:
    log = SqliteEventLog.from_url(f"sqlite:///{tmp_path}/events.db")
    await log.start()
    db_url = None
    if request.param == "sqlite":
        engine: Any = SqliteEngine(tmp_path / "inv.db", sweep_interval=None)
    else:
        db_url = mysql_url_with_database(request.getfixturevalue("mysql_url"), unique_name("inv_events"))
        engine = ClusterEngine(
            request.getfixturevalue("redis_url"), mysql_target(db_url), sweep_interval=None
        )
    relay = OutboxRelay(engine, log, interval=0.05)
    engine.on_outbox = relay.notify
    feed = FeedStockConsumer(engine, log, group=unique_name("inventory-feed"))
    await engine.start()
    relay.start()
    feed.start()
    try:
        yield engine, log
    finally:
        await feed.stop()
        await engine.close()
        await relay.stop()
        await log.close()
        if db_url:
            drop_mysql_database(db_url)


def upsert(sku: str, stock: dict[str, int] | None, revision: int) -> Any:
    """As ingest publishes it: ``sku`` is supplier-scoped, ``sup:<code>``."""
    product = Product(
        product_id=sku,
        supplier_id="sup",
        sku=sku,
        title=sku,
        price=1,
        stock=stock,  # type: ignore[arg-type]
    )
    return new_event(
        ProductUpserted(product=product), key=product.product_id, revision=revision, producer="ingest"
    )


async def eventually(check: Any, within: float = 20.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        try:
            return await check()
        except (AssertionError, Exception):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_feed_stock_in_and_stock_events_out(wired: tuple[Any, SqliteEventLog]) -> None:
    engine, log = wired
    sku = f"sup:{unique_name('FEED')}"
    await publish_events(log, [upsert(sku, {"blr": 5, "del": 3}, 1), upsert("sup:NOSTOCK", None, 1)])

    async def on_hand_is_8() -> None:
        assert (await engine.get_stock(sku)).on_hand == 8

    await eventually(on_hand_is_8)
    await engine.reserve(
        ReserveRequest(sku=sku, quantity=8, customer_id="c", idempotency_key=unique_name("k"))
    )
    await publish_events(log, [upsert(sku, {"blr": 100}, 1)])  # a redelivered old revision changes nothing
    await publish_events(log, [upsert(sku, {"blr": 9, "del": 3}, 2)])  # newer: on-hand 12, the hold stays

    async def restocked() -> None:
        stock = await engine.get_stock(sku)
        assert (stock.on_hand, stock.held, stock.available) == (12, 8, 4)

    await eventually(restocked)

    consumer = log.consumer([INVENTORY_TOPIC], unique_name("check"))
    await consumer.start()
    seen: list[Any] = []

    async def all_events() -> None:
        seen.extend(decode_event(r.value) for r in await consumer.poll(500, 0.2))
        mine = [e for e in seen if e.key == sku]
        changes = [
            (e.payload.on_hand, e.payload.available, e.payload.in_stock, e.payload.reason)
            for e in mine
            if isinstance(e.payload, StockLevelChanged)
        ]
        assert changes == [(8, 8, True, "feed"), (8, 0, False, "reserve"), (12, 4, True, "feed")], changes
        assert [e.payload.available for e in mine if isinstance(e.payload, RestockAlert)] == [
            0
        ]  # falls below 5 once
        revisions = [e.revision for e in mine if isinstance(e.payload, StockLevelChanged)]
        assert revisions == sorted(revisions)

    try:
        await eventually(all_events)
    finally:
        await consumer.stop()
