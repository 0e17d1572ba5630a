"""The homepage on Redis, as several API processes share it: one build across all of them on a stampede,
and the others serve the previous copy while it is rebuilt. Each "process" is a service with its own
Redis connection (its own single-flight state and document memo)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from emporium.app import create_app
from kernel.contracts.events import Product, ProductUpserted, StockLevelChanged, new_event
from kernel.eventlog.processing import publish_events
from kernel.eventlog.sqlite import SqliteEventLog
from kernel.settings import load_settings
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


async def test_the_app_serves_the_homepage_from_redis(redis_url: str, tmp_path: Path) -> None:
    """The whole app on the cluster cache: its projector fills Redis, the page hides a stock-out at once,
    and another process finds the document already built."""
    settings = load_settings(env={}, data_dir=str(tmp_path), cache_url=redis_url, homepage_min_rebuild_s=0.0)
    await RedisHomepageCache.from_url(redis_url).clear()  # the default prefix, as the app uses it
    app = create_app(settings)
    async with AsyncTestClient(app=app) as client:
        event_log = SqliteEventLog.from_url(settings.event_log_url)
        await event_log.start()
        try:
            events = []
            for n in range(20):
                product = Product(
                    product_id=f"r:p{n}", supplier_id="r", sku=f"r:S{n}", title=f"P{n}", price=Decimal("5")
                )
                events.append(
                    new_event(
                        ProductUpserted(product=product), key=product.product_id, revision=1, producer="t"
                    )
                )
                level = StockLevelChanged(
                    sku=product.sku, on_hand=1, held=0, sold=0, available=1, in_stock=True
                )
                events.append(new_event(level, key=product.sku, revision=1, producer="t"))
            await publish_events(event_log, events)
            newest = await _until(client, lambda ids: len(ids) == 12)
            out = StockLevelChanged(sku="r:S19", on_hand=1, held=0, sold=1, available=0, in_stock=False)
            await publish_events(event_log, [new_event(out, key="r:S19", revision=2, producer="t")])
            await _until(client, lambda ids: "r:p19" not in ids and len(ids) == 12)
            assert newest[0] == "r:p19"
        finally:
            await event_log.close()
    other = RedisHomepageCache.from_url(redis_url)
    try:
        service = HomepageService(other, in_stock)
        page = await service.page("", Platform.WEB)
        assert service.builds == 0 and b"r:p18" in page.body
    finally:
        await other.clear()
        await other.close()


async def _until(client: AsyncTestClient[Litestar], check: Callable[[list[str]], bool]) -> list[str]:
    for _ in range(400):
        response = await client.get("/v1/homepage")
        if response.status_code == 200:
            ids = [item["product_id"] for item in response.json()["sections"][1]["items"]]
            if check(ids):
                return ids
        await asyncio.sleep(0.025)
    raise AssertionError(f"the homepage never passed the check: {response.text[:1000]}")
