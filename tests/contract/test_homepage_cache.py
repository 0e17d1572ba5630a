"""One contract suite for the homepage cache, run against every adapter (in-process and Redis)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from read_models.homepage.memory import MemoryHomepageCache
from read_models.homepage.model import (
    BUCKET_S,
    ActivityHit,
    Document,
    Platform,
    ProductCard,
    ProductChange,
    ProductEntry,
    RankedList,
    StockFlag,
    popular_list,
    recs_list,
    trend_list,
)
from read_models.homepage.port import HomepageCache
from read_models.homepage.redis import RedisHomepageCache

NOW = time.time()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.cluster)])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[HomepageCache]:
    if request.param == "memory":
        store: HomepageCache = MemoryHomepageCache()
    else:
        redis_url = request.getfixturevalue("redis_url")
        store = RedisHomepageCache.from_url(redis_url, prefix=f"test:home:{uuid.uuid4().hex}")
    try:
        yield store
    finally:
        await store.clear()
        await store.close()


def entry(
    pid: str,
    *,
    category: str = "Food",
    rating: float | None = None,
    discount: float = 0.0,
    first_seen: float = 1000.0,
    price: str = "10",
) -> ProductEntry:
    card = ProductCard(
        product_id=pid,
        sku=f"s:{pid}",
        title=f"Product {pid}",
        brand="b",
        category=category,
        price=Decimal(price),
        list_price=Decimal("20") if discount else None,
        currency="INR",
        rating=rating,
    )
    return ProductEntry(card=card, leading_category=category, discount=discount, first_seen=first_seen)


def upsert(pid: str, revision: int, **fields: object) -> ProductChange:
    return ProductChange(pid, revision, entry(pid, **fields))  # type: ignore[arg-type]


async def rankings(cache: HomepageCache, region: str = "", lists: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    return await cache.rankings(region=region, depth=10, categories=3, per_category=5, lists=lists, now=NOW)


async def test_products_rank_by_first_seen_discount_and_rating(cache: HomepageCache) -> None:
    applied = await cache.apply_products(
        [
            upsert("a", 1, first_seen=100, discount=0.1, rating=4.0),
            upsert("b", 1, first_seen=300, discount=0.5, rating=3.0),
            upsert("c", 1, first_seen=200, rating=4.5, category="Home"),
            upsert("d", 1, first_seen=50, category="Home", rating=2.0),
            upsert("e", 1, first_seen=60, category="Toys", rating=5.0),
        ]
    )
    assert applied == 5
    found = await rankings(cache)
    assert found.new == ["b", "c", "a", "e", "d"]
    assert found.deals == ["b", "a"]
    # leading categories: most rated products first (ties by name, descending)
    assert list(found.rated) == ["Home", "Food", "Toys"]
    assert found.rated["Home"] == ["c", "d"] and found.rated["Food"] == ["a", "b"]
    products = await cache.products(["a", "zz", "c"])
    assert set(products) == {"a", "c"} and products["c"].card.rating == 4.5


async def test_stale_and_repeated_product_changes_change_nothing(cache: HomepageCache) -> None:
    await cache.apply_products([upsert("a", 5, discount=0.3, rating=4.0)])
    generation = await cache.generation()
    assert await cache.apply_products([upsert("a", 5, discount=0.9), upsert("a", 3, rating=1.0)]) == 0
    assert await cache.generation() == generation
    assert (await rankings(cache)).deals == ["a"]
    assert (await cache.products(["a"]))["a"].discount == 0.3


async def test_an_update_moves_the_product_between_rankings(cache: HomepageCache) -> None:
    await cache.apply_products([upsert("a", 1, first_seen=10, discount=0.3, rating=4.0, category="Food")])
    await cache.apply_products([upsert("a", 2, first_seen=99, discount=0.0, rating=3.0, category="Home")])
    found = await rankings(cache)
    assert found.deals == [] and found.rated == {"Home": ["a"]}
    assert found.new == ["a"]  # first seen stays the first sighting
    assert (await cache.products(["a"]))["a"].leading_category == "Home"


async def test_a_removal_hides_the_product_and_a_stale_upsert_cannot_resurrect_it(
    cache: HomepageCache,
) -> None:
    await cache.apply_products([upsert("a", 1, discount=0.3, rating=4.0), upsert("b", 1, rating=3.0)])
    assert await cache.apply_products([ProductChange("a", 2, None)]) == 1
    assert await cache.apply_products([upsert("a", 1, discount=0.3)]) == 0
    found = await rankings(cache)
    assert found.new == ["b"] and found.deals == [] and found.rated == {"Food": ["b"]}
    assert await cache.products(["a"]) == {}


async def test_lists_keep_the_newest_revision(cache: HomepageCache) -> None:
    name = trend_list("hour", "IN")
    await cache.apply_lists([RankedList(name, ("a", "b"), 2, NOW)])
    assert await cache.apply_lists([RankedList(name, ("z",), 1, NOW), RankedList(name, ("y",), 2, NOW)]) == 0
    found = await rankings(cache, "IN", lists=(name, popular_list("IN")))
    assert found.lists == {name: RankedList(name, ("a", "b"), 2, NOW)}


async def test_personal_lists_do_not_bump_the_generation_shared_lists_do(cache: HomepageCache) -> None:
    await cache.apply_products([upsert("a", 1), upsert("b", 1)])
    before = await cache.generation()
    await cache.apply_lists([RankedList(recs_list("u1"), ("b", "gone", "a"), 1, NOW)])
    assert await cache.generation() == before
    assert [c.product_id for c in await cache.personal("u1", 10)] == ["b", "a"]
    assert [c.product_id for c in await cache.personal("u1", 1)] == ["b"]
    assert await cache.personal("nobody", 10) == []
    await cache.apply_lists([RankedList(popular_list(""), ("a",), 1, NOW)])
    assert await cache.generation() > before


async def test_personal_lists_older_than_the_latest_popularity_are_not_served(cache: HomepageCache) -> None:
    """A later run whose ALS lost publishes popularity only: the earlier run's list of a user is stale."""
    await cache.apply_products([upsert("a", 1), upsert("b", 1)])
    await cache.apply_lists([RankedList(recs_list("u1"), ("b",), 5, NOW)])
    await cache.apply_lists([RankedList(popular_list("IN"), ("a",), 9, NOW)])  # a region's: no say
    await cache.apply_lists([RankedList(popular_list(""), ("a",), 5, NOW)])  # the same run
    assert [c.product_id for c in await cache.personal("u1", 10)] == ["b"]
    await cache.apply_lists([RankedList(popular_list(""), ("a",), 6, NOW)])  # the next run
    assert await cache.personal("u1", 10) == []
    await cache.apply_lists([RankedList(recs_list("u1"), ("a", "b"), 7, NOW)])  # ALS won again
    assert [c.product_id for c in await cache.personal("u1", 10)] == ["a", "b"]


async def test_stock_flips_bump_the_generation(cache: HomepageCache) -> None:
    g0 = await cache.generation()
    assert await cache.apply_stock([StockFlag("s1", False, 1)]) == 0  # unknown was not in stock either
    assert await cache.apply_stock([StockFlag("s1", True, 2), StockFlag("s2", True, 1)]) == 2
    g1 = await cache.generation()
    assert g1 > g0
    assert await cache.apply_stock([StockFlag("s1", True, 3), StockFlag("s1", False, 2)]) == 0
    assert await cache.generation() == g1
    assert await cache.apply_stock([StockFlag("s1", False, 4)]) == 1
    assert await cache.sold_out(["s1", "s2", "unknown"]) == {"s1", "unknown"}
    assert await cache.sold_out([]) == set()


async def test_activity_counts_each_event_once_per_region_and_overall(cache: HomepageCache) -> None:
    hits = [
        ActivityHit("e1", "a", "IN", 1.0, NOW),
        ActivityHit("e2", "b", "IN", 5.0, NOW - 60),
        ActivityHit("e3", "c", "US", 3.0, NOW),
        ActivityHit("e4", "a", "US", 1.0, NOW - 2 * BUCKET_S),
        ActivityHit("old", "z", "IN", 100.0, NOW - 24 * BUCKET_S),  # outside the window
    ]
    generation = await cache.generation()
    assert await cache.add_activity(hits, now=NOW) == 4
    assert await cache.generation() == generation  # documents follow activity by their maximum age
    assert await cache.add_activity(hits[:2], now=NOW) == 0  # redelivered
    found = await rankings(cache, "IN")
    assert found.activity["IN"] == ["b", "a"]
    assert found.activity[""] == ["b", "c", "a"]  # every region: b 5, c 3, a 1 + 1


async def test_regions_are_known_once_a_list_or_activity_names_them(cache: HomepageCache) -> None:
    assert not await cache.region_known("IN")
    await cache.apply_lists([RankedList(popular_list("IN"), ("a",), 1, NOW, "IN")])
    await cache.add_activity([ActivityHit("e-us", "a", "US", 1.0, NOW)], now=NOW)
    assert await cache.region_known("IN") and await cache.region_known("US")
    assert not await cache.region_known("") and not await cache.region_known("Atlantis")


async def test_documents_round_trip_with_the_generation(cache: HomepageCache) -> None:
    assert await cache.document("IN|web") == (None, await cache.generation())
    document = Document(
        region="IN", platform=Platform.WEB, generation=3, built_at=NOW, sections=[], etag='"x"', body=b"{}"
    )
    await cache.put_document("IN|web", document)
    found, generation = await cache.document("IN|web")
    assert found == document and generation == await cache.generation()
    newer = Document(
        region="IN", platform=Platform.WEB, generation=4, built_at=NOW + 1, sections=[], etag='"y"'
    )
    await cache.put_document("IN|web", newer)
    assert (await cache.document("IN|web"))[0] == newer
    assert (await cache.document("IN|app"))[0] is None


async def test_a_lock_has_one_holder_until_released_or_expired(cache: HomepageCache) -> None:
    token = await cache.acquire("k", 5.0)
    assert token is not None
    assert await cache.acquire("k", 5.0) is None
    await cache.release("k", "not-the-token")
    assert await cache.acquire("k", 5.0) is None
    await cache.release("k", token)
    short = await cache.acquire("k", 0.05)
    assert short is not None
    await asyncio.sleep(0.1)
    taken = await cache.acquire("k", 5.0)
    assert taken is not None
    await cache.release("k", short)  # the expired holder cannot release its successor's lock
    assert await cache.acquire("k", 5.0) is None


async def test_concurrent_lock_attempts_have_one_winner(cache: HomepageCache) -> None:
    tokens = await asyncio.gather(*(cache.acquire("race", 5.0) for _ in range(50)))
    assert sum(token is not None for token in tokens) == 1
