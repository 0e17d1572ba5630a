"""Catalog, stock, trending, recommendation and activity events -> the homepage cache (consumer group
``read-models.homepage``).

Idempotent: the cache compares revisions for products, lists and stock flags, and counts an activity event
once. Within a batch, events are mapped in log order (the cache applies them in that order, so the newest
revision per key wins). Offsets are committed by the runner only after ``handle`` returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import structlog

from kernel.contracts.events import (
    ACTIVITY_TOPIC,
    CATALOG_TOPIC,
    INVENTORY_TOPIC,
    RECOMMENDATIONS_TOPIC,
    TRENDING_TOPIC,
    AddedToCart,
    Envelope,
    PopularProductsComputed,
    ProductRemoved,
    ProductUpserted,
    ProductViewed,
    Purchased,
    RecommendationsComputed,
    StockLevelChanged,
    TrendingComputed,
)
from kernel.eventlog.port import EventLog
from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from read_models.homepage.model import (
    CART_WEIGHT,
    PURCHASE_WEIGHT,
    VIEW_WEIGHT,
    ActivityHit,
    ProductChange,
    RankedList,
    StockFlag,
    entry_of,
    popular_list,
    recs_list,
    trend_list,
)
from read_models.homepage.port import HomepageCache
from read_models.recommendations import is_valid_user_id

log = structlog.get_logger(__name__)

HOMEPAGE_GROUP = "read-models.homepage"
MAX_PURCHASE_UNITS = 10  # one big order must not make a product "trending" on its own


class Batch:
    """One batch's writes, by kind, in log order."""

    def __init__(self) -> None:
        self.products: list[ProductChange] = []
        self.lists: list[RankedList] = []
        self.stock: list[StockFlag] = []
        self.activity: list[ActivityHit] = []


def _activity(event: Envelope, batch: Batch) -> None:
    payload = event.payload
    at = event.occurred_at.timestamp()
    if isinstance(payload, ProductViewed | AddedToCart):
        weight = VIEW_WEIGHT if isinstance(payload, ProductViewed) else CART_WEIGHT
        batch.activity.append(
            ActivityHit(event.event_id, payload.product_id, payload.region or "", weight, at)
        )
    elif isinstance(payload, Purchased):
        for n, item in enumerate(payload.items):
            weight = PURCHASE_WEIGHT * min(max(item.quantity, 1), MAX_PURCHASE_UNITS)
            hit_id = f"{event.event_id}:{n}"
            batch.activity.append(ActivityHit(hit_id, item.product_id, payload.region or "", weight, at))


def _analytics(event: Envelope, batch: Batch) -> None:
    payload, at = event.payload, event.occurred_at.timestamp()
    if isinstance(payload, TrendingComputed):
        if payload.kind == "products":
            ranked = tuple(e.key for e in sorted(payload.entries, key=lambda e: -e.score))
            name = trend_list(payload.window, payload.region)
            end = payload.window_end.timestamp()
            batch.lists.append(RankedList(name, ranked, event.revision, end, payload.region))
    elif isinstance(payload, PopularProductsComputed):
        name = popular_list(payload.region)
        batch.lists.append(RankedList(name, payload.product_ids, event.revision, at, payload.region))
    elif isinstance(payload, RecommendationsComputed) and is_valid_user_id(payload.user_id):
        batch.lists.append(RankedList(recs_list(payload.user_id), payload.product_ids, event.revision, at))


def batch_of(events: Sequence[Envelope]) -> Batch:
    """Pure: what a batch of events writes."""
    batch = Batch()
    for event in events:
        payload = event.payload
        if isinstance(payload, ProductUpserted):
            entry = entry_of(payload.product, event.occurred_at.timestamp())
            batch.products.append(ProductChange(payload.product.product_id, event.revision, entry))
        elif isinstance(payload, ProductRemoved):
            batch.products.append(ProductChange(payload.product_id, event.revision, None))
        elif isinstance(payload, StockLevelChanged):
            batch.stock.append(StockFlag(payload.sku, payload.in_stock, event.revision))
        elif event.topic == ACTIVITY_TOPIC:
            _activity(event, batch)
        else:
            _analytics(event, batch)
    return batch


class HomepageProjection:
    name = "homepage"
    topics = (CATALOG_TOPIC, INVENTORY_TOPIC, TRENDING_TOPIC, RECOMMENDATIONS_TOPIC, ACTIVITY_TOPIC)

    def __init__(self, cache: HomepageCache, clock: Callable[[], float] = time.time) -> None:
        self.cache = cache
        self.clock = clock

    async def handle(self, events: Sequence[Envelope]) -> None:
        batch = batch_of(events)
        if batch.products:
            await self.cache.apply_products(batch.products)
        if batch.lists:
            await self.cache.apply_lists(batch.lists)
        if batch.stock:
            await self.cache.apply_stock(batch.stock)
        if batch.activity:
            await self.cache.add_activity(batch.activity, now=self.clock())


def homepage_projector(
    event_log: EventLog,
    cache: HomepageCache,
    *,
    metrics: ProjectorMetrics,
    group: str = HOMEPAGE_GROUP,
    replay: bool = False,
    batch_size: int = 2000,
    poll_timeout: float = 0.5,
) -> ProjectorTask:
    """The live projector as a background task (``serve`` in-process, or ``emporium project``)."""
    return ProjectorTask(
        event_log,
        HomepageProjection(cache),
        group=group,
        metrics=metrics,
        batch_size=batch_size,
        replay=replay,
        poll_timeout=poll_timeout,
    )
