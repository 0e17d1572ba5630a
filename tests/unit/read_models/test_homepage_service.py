"""The homepage request path over the in-process cache: single flight, serve-stale-while-revalidate, the
minimum rebuild interval, the live stock filter, personalisation and what the sections are made of."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest

from kernel.contracts.events import (
    PopularProductsComputed,
    Product,
    ProductUpserted,
    ProductViewed,
    RecommendationsComputed,
    StockLevelChanged,
    TrendingComputed,
    TrendingEntry,
    new_event,
)
from read_models.homepage.memory import MemoryHomepageCache
from read_models.homepage.model import Platform
from read_models.homepage.projection import HomepageProjection
from read_models.homepage.service import Freshness, HomepageService, HomepageUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Stock:
    """The live out-of-stock set as the composition root passes it: a callable, counted."""

    def __init__(self) -> None:
        self.out: set[str] = set()
        self.calls = 0

    async def __call__(self, skus: Sequence[str]) -> set[str]:
        self.calls += 1
        return {sku for sku in skus if sku in self.out}


def product(
    n: int, *, category: str = "Food", rating: float | None = None, list_price: str | None = None
) -> Product:
    return Product(
        product_id=f"acme:p{n}",
        supplier_id="acme",
        sku=f"acme:S{n}",
        title=f"Product {n}",
        category_path=(category, "Sub"),
        price=Decimal("10"),
        list_price=Decimal(list_price) if list_price else None,
        rating=rating,
    )


async def feed(cache: MemoryHomepageCache, products: Sequence[Product]) -> None:
    """The products, in stock (what a build skips is decided by the stock events it projected)."""
    events = [
        new_event(ProductUpserted(product=p), key=p.product_id, revision=1, producer="t") for p in products
    ]
    for p in products:
        level = StockLevelChanged(sku=p.sku, on_hand=1, held=0, sold=0, available=1, in_stock=True)
        events.append(new_event(level, key=p.sku, revision=1, producer="t"))
    await HomepageProjection(cache).handle(events)


def sections(body: bytes) -> dict[str, list[str]]:
    page = msgspec.json.decode(body)
    out: dict[str, list[str]] = {}
    for section in page["sections"]:
        name = section["id"] + (f":{section['category']}" if "category" in section else "")
        out[name] = [item["product_id"] for item in section["items"]]
    return out


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def setup(clock: Clock) -> tuple[MemoryHomepageCache, Stock, HomepageService]:
    cache = MemoryHomepageCache(clock=clock)
    await feed(
        cache, [product(n, rating=n % 5, list_price="12" if n % 3 == 0 else None) for n in range(1, 41)]
    )
    stock = Stock()
    service = HomepageService(cache, stock, freshness=Freshness(max_age_s=60, min_rebuild_s=2), clock=clock)
    return cache, stock, service


async def test_a_stampede_on_an_empty_cache_builds_once(
    setup: tuple[MemoryHomepageCache, Stock, HomepageService],
) -> None:
    cache, _, service = setup
    pages = await asyncio.gather(*(service.page("", Platform.WEB) for _ in range(1000)))
    assert service.builds == 1
    assert len({page.etag for page in pages}) == 1
    # a second process over the same cache finds the document: no build
    other = HomepageService(cache, Stock(), clock=service.clock)
    await asyncio.gather(*(other.page("", Platform.WEB) for _ in range(100)))
    assert other.builds == 0


async def test_stale_copies_are_served_while_one_rebuild_runs(
    setup: tuple[MemoryHomepageCache, Stock, HomepageService], clock: Clock
) -> None:
    cache, _, service = setup
    first = await service.page("", Platform.WEB)
    await feed(cache, [product(99, rating=4.9)])  # ingredients change: the generation moves
    clock.now += 1.0  # within the minimum rebuild interval: no rebuild yet
    assert (await service.page("", Platform.WEB)).etag == first.etag
    await asyncio.sleep(0)
    assert service.builds == 1
    clock.now += 1.5
    stale = await asyncio.gather(*(service.page("", Platform.WEB) for _ in range(200)))
    assert {page.etag for page in stale} == {first.etag}  # served the previous copy, not waiting
    await asyncio.sleep(0.01)  # the one background rebuild completes
    assert service.builds == 2
    fresh = await service.page("", Platform.WEB)
    assert fresh.etag != first.etag and "acme:p99" in sections(fresh.body)["new_arrivals"]


async def test_an_old_document_is_rebuilt_even_if_nothing_changed(
    setup: tuple[MemoryHomepageCache, Stock, HomepageService], clock: Clock
) -> None:
    _, _, service = setup
    await service.page("", Platform.APP)
    clock.now += 61
    await service.page("", Platform.APP)
    await asyncio.sleep(0.01)
    assert service.builds == 2


async def test_sold_out_items_never_show_and_the_etag_follows(
    setup: tuple[MemoryHomepageCache, Stock, HomepageService],
) -> None:
    _, stock, service = setup
    before = await service.page("", Platform.WEB)
    shown = sections(before.body)["new_arrivals"]
    assert len(shown) == 12
    stock.out.add("acme:S" + shown[0].removeprefix("acme:p"))
    after = await service.page("", Platform.WEB)
    assert shown[0] not in str(sections(after.body)) and after.etag != before.etag
    assert len(sections(after.body)["new_arrivals"]) == 12  # a spare fills the gap
    assert service.builds == 1  # filtered at request time, no rebuild


async def test_sections_are_made_of_the_right_products(clock: Clock) -> None:
    cache = MemoryHomepageCache(clock=clock)
    at = datetime.fromtimestamp(clock.now, UTC)
    await feed(
        cache,
        [
            product(1, category="Food", rating=4.0, list_price="20"),  # 50% off
            product(2, category="Food", rating=4.8, list_price="11"),
            product(3, category="Home", rating=3.0),
            product(4, category="Home", rating=4.4),
            product(5, category="Toys", rating=4.9),
        ],
    )
    projection = HomepageProjection(cache, clock=clock)
    trending = TrendingComputed(
        window="hour",
        kind="products",
        window_end=at,
        entries=(
            TrendingEntry(key="acme:p3", score=1.0, count=9),
            TrendingEntry(key="acme:p4", score=9.0, count=9),
        ),
    )
    await projection.handle(
        [
            new_event(trending, key="trending:products:hour:", revision=1, producer="t"),
            new_event(
                PopularProductsComputed(product_ids=("acme:p5", "acme:p1")),
                key="popular:",
                revision=1,
                producer="t",
            ),
            new_event(
                RecommendationsComputed(user_id="u1", product_ids=("acme:p2",)),
                key="u1",
                revision=1,
                producer="t",
            ),
        ]
    )
    service = HomepageService(cache, Stock(), clock=clock)
    found = sections((await service.page("", Platform.WEB)).body)
    assert found["trending"] == ["acme:p4", "acme:p3"]
    assert found["deals"] == ["acme:p1", "acme:p2"]
    assert found["top_rated:Food"] == ["acme:p2", "acme:p1"] and found["top_rated:Home"] == [
        "acme:p4",
        "acme:p3",
    ]
    assert found["recommended"] == ["acme:p5", "acme:p1"]
    personal = await service.page("", Platform.WEB, "u1")
    assert personal.personalised and sections(personal.body)["recommended"] == ["acme:p2"]
    assert service.builds == 1  # one document serves everyone; the personal section is read per request


async def test_trending_falls_back_to_recent_activity(clock: Clock) -> None:
    cache = MemoryHomepageCache(clock=clock)
    await feed(cache, [product(n) for n in range(1, 4)])
    at = datetime.fromtimestamp(clock.now - 60, UTC)
    views = [
        new_event(ProductViewed(product_id=pid, region="IN"), key=pid, revision=1, producer="t")
        for pid in ("acme:p2", "acme:p2", "acme:p3")
    ]
    views = [msgspec.structs.replace(v, occurred_at=at) for v in views]
    await HomepageProjection(cache, clock=clock).handle(views)
    service = HomepageService(cache, Stock(), clock=clock)
    page = msgspec.json.decode((await service.page("IN", Platform.APP)).body)
    trending = page["sections"][0]
    assert trending["source"] == "activity"
    assert [item["product_id"] for item in trending["items"]] == ["acme:p2", "acme:p3"]
    recommended = page["sections"][-1]  # no popularity computed yet: the trending guess
    assert recommended["id"] == "recommended" and recommended["source"] == "activity"
    assert [item["product_id"] for item in recommended["items"]] == ["acme:p2", "acme:p3"]


async def test_a_stock_out_bumps_the_generation_and_the_rebuild_skips_it(clock: Clock) -> None:
    cache = MemoryHomepageCache(clock=clock)
    await feed(cache, [product(n) for n in range(1, 4)])
    service = HomepageService(cache, Stock(), freshness=Freshness(min_rebuild_s=0), clock=clock)
    first = sections((await service.page("", Platform.APP)).body)
    assert first["new_arrivals"] == ["acme:p3", "acme:p2", "acme:p1"]
    before = await cache.generation()
    event = StockLevelChanged(sku="acme:S2", on_hand=1, held=0, sold=1, available=0, in_stock=False)
    await HomepageProjection(cache, clock=clock).handle(
        [new_event(event, key="acme:S2", revision=2, producer="t")]
    )
    assert await cache.generation() > before
    await service.page("", Platform.APP)  # serves the old copy (the live set has not seen it) and rebuilds
    await asyncio.sleep(0.01)
    rebuilt = (await cache.document("|app"))[0]
    assert rebuilt is not None and "acme:S2" not in rebuilt.skus


async def test_a_failing_first_build_is_a_retryable_error(clock: Clock) -> None:
    class Broken(MemoryHomepageCache):
        async def products(self, product_ids: Sequence[str]) -> dict:  # type: ignore[type-arg]
            raise ConnectionError("cache down")

    service = HomepageService(Broken(clock=clock), Stock(), clock=clock)
    with pytest.raises(HomepageUnavailable):
        await service.page("", Platform.WEB)
