"""The homepage on Redis, as several API processes share it: one build across all of them on a stampede,
and the others serve the previous copy while it is rebuilt. Each "process" is a service with its own
Redis connection (its own single-flight state and document memo)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal

import pytest

from kernel.contracts.events import Product, ProductUpserted, StockLevelChanged, new_event
from read_models.homepage.model import Platform
from read_models.homepage.projection import HomepageProjection
from read_models.homepage.redis import RedisHomepageCache
from read_models.homepage.service import Freshness, HomepageService

PROCESSES = 4


async def in_stock(skus: Sequence[str]) -> set[str]:
    return set()


@pytest.fixture
async def caches(redis_url: str) -> AsyncIterator[list[RedisHomepageCache]]:
    prefix = f"test:home:{uuid.uuid4().hex}"
    opened = [RedisHomepageCache.from_url(redis_url, prefix=prefix) for _ in range(PROCESSES)]
    products = [
        Product(
            product_id=f"acme:p{n}",
            supplier_id="acme",
            sku=f"acme:S{n}",
            title=f"Product {n}",
            category_path=("Food",),
            price=Decimal("9"),
            list_price=Decimal("10"),
            rating=float(n % 5),
        )
        for n in range(200)
    ]
    events = [
        new_event(ProductUpserted(product=p), key=p.product_id, revision=1, producer="t") for p in products
    ]
    for p in products:
        level = StockLevelChanged(sku=p.sku, on_hand=1, held=0, sold=0, available=1, in_stock=True)
        events.append(new_event(level, key=p.sku, revision=1, producer="t"))
    await HomepageProjection(opened[0]).handle(events)
    try:
        yield opened
    finally:
        await opened[0].clear()
        for cache in opened:
            await cache.close()


async def test_a_stampede_across_processes_builds_once(caches: list[RedisHomepageCache]) -> None:
    services = [HomepageService(cache, in_stock) for cache in caches]
    pages = await asyncio.gather(*(services[n % PROCESSES].page("", Platform.WEB) for n in range(1000)))
    assert sum(service.builds for service in services) == 1
    assert len({page.etag for page in pages}) == 1
    assert b"acme:p199" in pages[0].body  # a real page: the newest product is a new arrival


async def test_a_stale_page_is_rebuilt_by_one_process_while_all_serve_the_old_copy(
    caches: list[RedisHomepageCache],
) -> None:
    now = [1_000_000.0]
    services = [
        HomepageService(cache, in_stock, freshness=Freshness(max_age_s=30), clock=lambda: now[0])
        for cache in caches
    ]
    first = await services[0].page("", Platform.APP)
    now[0] += 31  # too old for everyone
    pages = await asyncio.gather(*(services[n % PROCESSES].page("", Platform.APP) for n in range(400)))
    # the first answers are the old copy (nobody waited for the build); later ones may be the new one
    assert pages[0].etag == first.etag and len({page.etag for page in pages}) <= 2
    for _ in range(100):
        await asyncio.sleep(0.01)
        if not any(service._inflight for service in services):
            break
    assert sum(service.builds for service in services) == 2
