"""The search read model through the cluster adapters: Kafka -> projector -> Elasticsearch + Redis
out-of-stock set -> SearchService. Real servers from the conftest fixtures (never skipped)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from emporium.adapters import EVENT_LOG, SEARCH_INDEX
from kernel.contracts.events import (
    Envelope,
    Product,
    ProductUpserted,
    StockLevelChanged,
    encode_event,
    new_event,
)
from kernel.eventlog.port import EventLog, OutgoingMessage
from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from search.delivery_zones import DeliveryZones
from search.out_of_stock import RedisOutOfStockSet
from search.port import RebuildableSearchIndex
from search.projection import SearchProjection
from search.schemas import SearchRequest
from search.service import SearchService

pytestmark = pytest.mark.cluster

ITEMS = ("Basmati Rice", "Green Tea", "Cotton Kurta", "Running Shoes", "Olive Oil")


def upsert(n: int, revision: int = 1) -> Envelope:
    product = Product(
        product_id=f"cl:{n}",
        supplier_id="cl",
        sku=f"cl:CL-{n}",  # supplier-scoped, as ingest publishes it
        title=f"{ITEMS[n % len(ITEMS)]} {n}",
        brand=f"Brand{n % 3}",
        category_path=("Shop", ITEMS[n % len(ITEMS)].split()[-1]),
        price=Decimal(100 + n),
        rating=4.0,
        stock={"wh-north": 2},
    )
    return new_event(
        ProductUpserted(product=product), key=product.product_id, revision=revision, producer="t"
    )


def stock(n: int, in_stock: bool, revision: int) -> Envelope:
    payload = StockLevelChanged(
        sku=f"cl:CL-{n}",
        on_hand=1,
        held=0,
        sold=int(not in_stock),
        available=int(in_stock),
        in_stock=in_stock,
    )
    return new_event(payload, key=f"cl:CL-{n}", revision=revision, producer="t")


class ClusterStack:
    def __init__(self, kafka_url: str, redis_url: str, elasticsearch_url: str) -> None:
        uid = uuid.uuid4().hex[:10]
        self.catalog, self.inventory = f"catalog-{uid}", f"inventory-{uid}"
        self.log: EventLog = EVENT_LOG.open(kafka_url, client_id=f"test-{uid}")
        self.index: RebuildableSearchIndex = SEARCH_INDEX.open(f"{elasticsearch_url}?index=search-it-{uid}")
        self.stock = RedisOutOfStockSet.from_url(redis_url, prefix=f"test:search:{uid}")
        self.service = SearchService(index=self.index, stock=self.stock, zones=DeliveryZones.from_file())
        self.task = ProjectorTask(
            self.log,
            SearchProjection(index=self.index, stock=self.stock, topics=(self.catalog, self.inventory)),
            group=f"search-it-{uid}",
            metrics=ProjectorMetrics.of(CollectorRegistry()),
            poll_timeout=0.05,
        )

    async def publish(self, events: list[Envelope]) -> None:
        """Each product upserted with feed stock comes with what inventory then publishes: in stock (revision
        0, so a test's own stock events are newer); without a stock event an item is out of stock."""
        stocked = [
            stock(int(e.payload.product.product_id.split(":")[1]), True, 0)
            for e in events
            if isinstance(e.payload, ProductUpserted) and e.payload.product.stock
        ]
        for event in [*events, *stocked]:
            topic = self.catalog if isinstance(event.payload, ProductUpserted) else self.inventory
            await self.log.publish(topic, [OutgoingMessage(event.key, encode_event(event))])

    async def settle(self) -> None:
        await self.task.wait_caught_up(poll_s=0.01, timeout_s=60)


@pytest.fixture
async def cluster(kafka_url: str, redis_url: str, elasticsearch_url: str) -> AsyncIterator[ClusterStack]:
    s = ClusterStack(kafka_url, redis_url, elasticsearch_url)
    await s.log.start()
    await s.index.ensure_index()
    s.task.start()
    try:
        yield s
    finally:
        await s.task.stop()
        await s.stock.clear()
        await s.stock.close()
        await s.index.close()
        await s.log.close()


async def skus(service: SearchService, **kw: object) -> list[str]:
    page = await service.search(SearchRequest(size=100, **kw))  # type: ignore[arg-type]
    return [h.sku for h in page.hits]


async def test_stock_out_and_restock_through_kafka_redis_elasticsearch(cluster: ClusterStack) -> None:
    await cluster.publish([upsert(n) for n in range(20)])
    await cluster.settle()
    await cluster.index.refresh()
    assert "cl:CL-5" in await skus(cluster.service, q="basmati")
    assert len(await skus(cluster.service, q="basmti rce")) == 4  # typo-tolerant

    started = time.perf_counter()
    await cluster.publish([stock(5, False, 1)])
    while "cl:CL-5" in await skus(cluster.service, q="basmati"):
        assert time.perf_counter() - started < 5, "stock-out never reached search"
    assert time.perf_counter() - started < 1.0  # no index refresh needed: Redis decides at once

    product = await cluster.service.product("cl:5")
    assert product is not None and product.in_stock is False
    await cluster.publish([stock(5, True, 3), stock(5, False, 2), stock(5, True, 3)])  # stale + duplicate
    await cluster.settle()
    assert "cl:CL-5" in await skus(cluster.service, q="basmati")
    state = await cluster.stock.state("cl:CL-5")
    assert state is not None and state.in_stock and state.revision == 3


async def test_stale_catalog_redelivery_never_overwrites(cluster: ClusterStack) -> None:
    await cluster.publish([upsert(1, 2), upsert(1, 1), upsert(1, 2)])
    await cluster.settle()
    docs = await cluster.index.get(["cl:1"])
    assert docs and docs[0].revision == 2
