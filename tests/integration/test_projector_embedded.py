"""Embedded stack end to end below HTTP: SQLite event log -> live projector -> Tantivy + in-process
out-of-stock set -> SearchService. Real adapters, no fakes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from kernel.contracts.events import (
    CATALOG_TOPIC,
    Envelope,
    Product,
    ProductRemoved,
    ProductUpserted,
    StockLevelChanged,
    new_event,
)
from kernel.eventlog.port import OutgoingMessage
from kernel.eventlog.processing import publish_events
from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from kernel.eventlog.sqlite import SqliteEventLog
from search.delivery_zones import DeliveryZones
from search.out_of_stock import MemoryOutOfStockSet
from search.port import Sort
from search.projection import SearchProjection
from search.schemas import SearchRequest
from search.service import SearchService
from search.tantivy import TantivySearchIndex

TITLES = ("Basmati Rice", "Green Tea", "Cotton Kurta", "Running Shoes", "Olive Oil", "Face Wash")
BRANDS = ("Daawat", "Tetley", "Fabindia", "Puma", "Figaro", "Himalaya")


def product(n: int, *, title: str | None = None) -> Product:
    kind = n % len(TITLES)
    return Product(
        product_id=f"it:{n}",
        supplier_id="it",
        sku=f"it:IT-{n}",  # supplier-scoped, as ingest publishes it
        title=title or f"{TITLES[kind]} pack {n}",
        brand=BRANDS[kind],
        category_path=("Grocery", TITLES[kind].split()[-1]),
        price=Decimal(50 + n),
        rating=float(n % 5) + 0.5,
        stock={"wh-south": 3} if n % 2 else {"wh-north": 3},
    )


def upsert(n: int, revision: int = 1, **kw: object) -> Envelope:
    return new_event(
        ProductUpserted(product=product(n, **kw)), key=f"it:{n}", revision=revision, producer="t"
    )


def stock_event(n: int, in_stock: bool, revision: int) -> Envelope:
    payload = StockLevelChanged(
        sku=f"it:IT-{n}", on_hand=int(in_stock), held=0, sold=0, available=int(in_stock), in_stock=in_stock
    )
    return new_event(payload, key=f"it:IT-{n}", revision=revision, producer="t")


def with_feed_stock(events: list[Envelope]) -> list[Envelope]:
    """The events plus what inventory publishes once it took in each product's feed stock (an item is in
    stock only once inventory says so); revision 0, so a test's own stock events are newer."""
    stocked = []
    for event in events:
        payload = event.payload
        if isinstance(payload, ProductUpserted) and payload.product.stock:
            n = int(payload.product.product_id.split(":")[1])
            stocked.append(stock_event(n, any(payload.product.stock.values()), 0))
    return [*events, *stocked]


class Stack:
    def __init__(self, path: Path) -> None:
        self.log = SqliteEventLog.from_url(f"sqlite:///{path / 'events.db'}")
        self.index = TantivySearchIndex(path / "search")
        self.stock = MemoryOutOfStockSet()
        self.service = SearchService(index=self.index, stock=self.stock, zones=DeliveryZones.from_file())
        self.task = ProjectorTask(
            self.log,
            SearchProjection(index=self.index, stock=self.stock),
            group="read-models.search",
            metrics=ProjectorMetrics.of(CollectorRegistry()),
            poll_timeout=0.05,
        )

    async def publish(self, events: list[Envelope]) -> None:
        await publish_events(self.log, with_feed_stock(events))

    async def settle(self) -> None:
        await self.task.wait_caught_up(poll_s=0.005, timeout_s=30)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    s = Stack(tmp_path)
    await s.log.start()
    await s.index.ensure_index()
    s.task.start()
    try:
        yield s
    finally:
        await s.task.stop()
        await s.index.close()
        await s.log.close()


async def skus(service: SearchService, **kw: object) -> list[str]:
    page = await service.search(SearchRequest(size=100, **kw))  # type: ignore[arg-type]
    return [h.sku for h in page.hits]


async def test_projected_catalog_is_searchable_with_typos_and_filters(stack: Stack) -> None:
    await stack.publish([upsert(n) for n in range(60)])
    await stack.settle()
    assert await stack.index.count() == 60
    found = await skus(stack.service, q="basmti rize")  # two typos
    assert found and all(int(s.split("-")[1]) % 6 == 0 for s in found)
    page = await stack.service.search(SearchRequest(brand=("Tetley",), sort=Sort.PRICE_DESC, size=5))
    assert page.total == 10 and [h.price for h in page.hits] == sorted(
        (h.price for h in page.hits), reverse=True
    )
    delivered = await stack.service.search(SearchRequest(deliver_to="NCR", size=100))
    assert delivered.total == 30 and all(h.eta_hours == 36 for h in delivered.hits)


async def test_stock_out_vanishes_from_the_very_next_search_and_comes_back(stack: Stack) -> None:
    await stack.publish([upsert(n) for n in range(12)])
    await stack.settle()
    assert "it:IT-6" in await skus(stack.service, q="basmati")
    await stack.publish([stock_event(6, False, 1)])
    await stack.settle()
    assert "it:IT-6" not in await skus(stack.service, q="basmati")
    assert "it:IT-6" in await skus(stack.service, q="basmati", in_stock=False)
    product = await stack.service.product("it:6")
    assert product is not None and not product.in_stock
    await stack.publish([stock_event(6, True, 2)])
    await stack.settle()
    assert "it:IT-6" in await skus(stack.service, q="basmati")


async def test_out_of_order_and_duplicate_events_leave_newest_state(stack: Stack) -> None:
    await stack.publish([upsert(0, 3, title="Basmati Rice newest"), upsert(0, 2, title="Basmati Rice old")])
    await stack.publish([stock_event(0, False, 5), stock_event(0, True, 4), stock_event(0, False, 5)])
    await stack.publish([upsert(0, 3, title="Basmati Rice newest")])  # duplicate delivery
    await stack.settle()
    await stack.index.refresh()  # the index's stock flag is near-real-time; the out-of-stock set is exact
    docs = await stack.index.get(["it:0"])
    assert docs[0].title == "Basmati Rice newest" and docs[0].revision == 3 and not docs[0].in_stock
    assert await skus(stack.service, q="basmati") == []
    removal = ProductRemoved(product_id="it:0", supplier_id="it", sku="it:IT-0")
    await stack.publish([new_event(removal, key="it:0", revision=4, producer="t"), upsert(0, 2)])
    await stack.settle()
    assert await stack.index.get(["it:0"]) == []


async def test_poison_message_is_dead_lettered_and_projection_continues(stack: Stack) -> None:
    await stack.log.publish(CATALOG_TOPIC, [OutgoingMessage("x", b"{not json")])
    await stack.publish([upsert(1)])
    await stack.settle()
    assert await skus(stack.service, q="green tea") == ["it:IT-1"]
    assert stack.task.processor.stats.dead_lettered == 1


async def test_freshness_of_stock_out_is_milliseconds(stack: Stack) -> None:
    await stack.publish([upsert(n) for n in range(20)])
    await stack.settle()
    delays = []
    for revision, n in enumerate(range(0, 20, 2), start=1):
        started = time.perf_counter()
        await stack.publish([stock_event(n, False, revision)])
        while f"it:IT-{n}" in await skus(stack.service, in_stock=True):  # noqa: ASYNC110 - polling is the point
            await asyncio.sleep(0.001)
        delays.append(time.perf_counter() - started)
    assert max(delays) < 1.0, delays


class FlakyIndex:
    """The real Tantivy index whose next write fails (an outage): the batch must be retried, not lost."""

    def __init__(self, index: TantivySearchIndex) -> None:
        self.index = index
        self.failures = 2

    def __getattr__(self, name: str) -> object:
        return getattr(self.index, name)

    async def upsert(self, documents: list, *, commit: bool = True) -> int:  # type: ignore[type-arg]
        if self.failures:
            self.failures -= 1
            raise ConnectionError("index unavailable")
        return await self.index.upsert(documents, commit=commit)


async def test_failed_index_write_is_retried_and_nothing_is_skipped(tmp_path: Path) -> None:
    s = Stack(tmp_path)
    flaky = FlakyIndex(s.index)
    s.task = ProjectorTask(
        s.log,
        SearchProjection(index=flaky, stock=s.stock),  # type: ignore[arg-type]
        group="read-models.search",
        metrics=ProjectorMetrics.of(CollectorRegistry()),
        poll_timeout=0.05,
    )
    s.task.processor.retry_initial_s = 0.01
    await s.log.start()
    await s.index.ensure_index()
    s.task.start()
    try:
        await s.publish([upsert(n) for n in range(10)])
        await s.settle()
        assert flaky.failures == 0 and s.task.processor.stats.handler_failures == 2
        assert await s.index.count() == 10
    finally:
        await s.task.stop()
        await s.index.close()
        await s.log.close()
