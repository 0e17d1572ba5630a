"""The recommendation and trending read models through the cluster adapters: Kafka -> projectors ->
Cassandra recommendations store + Redis trending store, read back through the readers the API uses, with
the Redis out-of-stock set answering what is sold out (through the composition root's ``sold_out_of``).
Real servers from the conftest fixtures; each test has its own keyspace, key prefixes and groups.

The issue's promise on a cluster: results served within 30 s of being published.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest
from prometheus_client import CollectorRegistry

from emporium.adapters import EVENT_LOG
from emporium.app import sold_out_of
from kernel.contracts.events import (
    Envelope,
    PopularProductsComputed,
    RecommendationsComputed,
    RelatedProductsComputed,
    TrendingComputed,
    TrendingEntry,
    new_event,
)
from kernel.eventlog.port import EventLog
from kernel.eventlog.processing import publish_events
from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from read_models.recommendations.cassandra import CassandraRecommendationsStore, parse_cassandra_url
from read_models.recommendations_projector import recommendations_projector
from read_models.serving import RecommendationsReader, TrendingReader
from read_models.trending.redis import RedisTrendingStore
from read_models.trending_projector import trending_projector
from search.out_of_stock import ProductLink, RedisOutOfStockSet, StockChange

pytestmark = pytest.mark.cluster

SERVED_WITHIN_S = 30.0
T = TypeVar("T")


class ClusterReadModels:
    def __init__(self, kafka_url: str, redis_url: str, cassandra_url: str) -> None:
        uid = uuid.uuid4().hex[:10]
        self.uid = uid
        self.log: EventLog = EVENT_LOG.open(kafka_url, client_id=f"test-rm-{uid}")
        self.cassandra_url = urlunsplit(urlsplit(cassandra_url)._replace(path=f"/emporium_rm_{uid}"))
        self.recs = CassandraRecommendationsStore(self.cassandra_url)
        self.trending = RedisTrendingStore.from_url(redis_url, prefix=f"test:rm-trending:{uid}")
        self.stock = RedisOutOfStockSet.from_url(redis_url, prefix=f"test:rm-stock:{uid}")
        metrics = ProjectorMetrics.of(CollectorRegistry())
        self.tasks: list[ProjectorTask] = [
            recommendations_projector(self.log, self.recs, metrics=metrics, group=f"rm-recs-{uid}"),
            trending_projector(self.log, self.trending, metrics=metrics, group=f"rm-trending-{uid}"),
        ]
        sold_out = sold_out_of(self.stock)
        self.reader = RecommendationsReader(self.recs, sold_out)
        self.trending_reader = TrendingReader(self.trending, sold_out)

    async def start(self) -> None:
        await self.log.start()
        await self.recs.start()
        for task in self.tasks:
            task.start()

    async def close(self) -> None:
        for task in self.tasks:
            await task.stop()
        await self.stock.clear()
        await self.trending.clear()
        for closable in (self.stock, self.trending, self.recs, self.log):
            await closable.close()
        await asyncio.to_thread(_drop_keyspace, self.cassandra_url)


def _drop_keyspace(url: str) -> None:
    from cassandra.cluster import Cluster

    cfg = parse_cassandra_url(url)
    cluster = Cluster(list(cfg.hosts), port=cfg.port, protocol_version=cfg.protocol_version)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {cfg.keyspace}")
    finally:
        cluster.shutdown()


@pytest.fixture
async def cluster(kafka_url: str, redis_url: str, cassandra_url: str) -> AsyncIterator[ClusterReadModels]:
    stack = ClusterReadModels(kafka_url, redis_url, cassandra_url)
    await stack.start()
    try:
        yield stack
    finally:
        await stack.close()


async def eventually(probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], what: str) -> T:
    deadline = time.monotonic() + SERVED_WITHIN_S
    while True:
        value = await probe()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"{what}: still {value!r} after {SERVED_WITHIN_S}s"
        await asyncio.sleep(0.1)


def events(uid: str, products: list[str]) -> list[Envelope]:
    """One run's results, at a revision above every other test's on the shared topic: a per-user list
    older than the latest all-region popularity list is not served, and this group reads the topic from
    its start."""
    user, p, run = f"u-{uid}", products, int(time.time() * 1e6)
    entries = tuple(TrendingEntry(key=k, score=2.0 - n, count=9) for n, k in enumerate(p[:3]))
    trending = TrendingComputed(
        window="day", kind="products", window_end=datetime(2026, 12, 6, tzinfo=UTC), entries=entries
    )
    return [
        new_event(
            RecommendationsComputed(user_id=user, product_ids=(p[0], p[1], p[2])),
            key=f"user:{user}",
            revision=run,
            producer="t",
        ),
        new_event(
            RelatedProductsComputed(product_id=p[3], product_ids=(p[0], p[4])),
            key=f"related:{p[3]}",
            revision=run,
            producer="t",
        ),
        new_event(
            PopularProductsComputed(product_ids=(p[1], p[4]), region=f"r{uid}"),
            key="popular",
            revision=run,
            producer="t",
        ),
        new_event(trending, key="trending:products:day:", revision=run, producer="t"),
    ]


async def test_results_are_served_through_the_cluster_adapters_without_sold_out_items(
    cluster: ClusterReadModels,
) -> None:
    uid = cluster.uid
    products = [f"cl{uid}:{n}" for n in range(5)]
    await cluster.stock.link([ProductLink(p, f"cl{uid}:SKU-{n}") for n, p in enumerate(products)])
    await cluster.stock.apply([StockChange(f"cl{uid}:SKU-{n}", n != 1, 1) for n in range(5)])  # 1: sold out
    p = products
    started = time.monotonic()
    await publish_events(cluster.log, events(uid, products))

    mine = await eventually(
        lambda: cluster.reader.for_user(f"u-{uid}"), lambda r: r.source == "personal", "user"
    )
    assert mine.product_ids == [p[0], p[2]] and mine.source == "personal" and mine.model == "als"
    related = await eventually(lambda: cluster.reader.related(p[3]), lambda r: r.model is not None, "related")
    assert related.product_ids == [p[0], p[4]]
    fallback = await eventually(
        lambda: cluster.reader.for_user(f"new-{uid}", region=f"r{uid}"),
        lambda r: r.source is not None,
        "popular",
    )
    assert fallback.product_ids == [p[4]] and fallback.source == "popular" and fallback.region == f"r{uid}"
    hot = await eventually(
        lambda: cluster.trending_reader.get(window="day", kind="products"),
        lambda r: [e.key for e in r.entries] == [p[0], p[2]],
        "trending",
    )
    assert hot.region == ""
    assert time.monotonic() - started < SERVED_WITHIN_S

    await cluster.stock.apply([StockChange(f"cl{uid}:SKU-0", False, 2)])  # sold out now: gone at once
    assert (await cluster.reader.for_user(f"u-{uid}")).product_ids == [p[2]]
    assert (await cluster.reader.related(p[3])).product_ids == [p[4]]
