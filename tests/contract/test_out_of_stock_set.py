"""One contract suite for the out-of-stock read model, run against every adapter (in-process and Redis)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from search.out_of_stock import (
    MemoryOutOfStockSet,
    OutOfStockSet,
    ProductLink,
    RedisOutOfStockSet,
    StockChange,
    sold_out_products,
)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.cluster)])
async def oos(request: pytest.FixtureRequest) -> AsyncIterator[OutOfStockSet]:
    if request.param == "memory":
        store: OutOfStockSet = MemoryOutOfStockSet()
    else:
        redis_url = request.getfixturevalue("redis_url")
        store = RedisOutOfStockSet.from_url(redis_url, prefix=f"test:oos:{uuid.uuid4().hex}")
    try:
        yield store
    finally:
        await store.clear()
        await store.close()


async def test_unknown_skus_are_out_of_stock(oos: OutOfStockSet) -> None:
    """No stock record, no sale: an item is in stock only once inventory said so (issue 13)."""
    assert await oos.out_of_stock(["a", "b"]) == {"a", "b"}
    assert await oos.out_of_stock([]) == set()
    assert await oos.state("a") is None


async def test_stock_out_and_restock(oos: OutOfStockSet) -> None:
    result = await oos.apply([StockChange("a", False, 1), StockChange("b", True, 1)])
    assert [c.sku for c in result.applied] == ["a", "b"]
    assert [c.sku for c in result.flipped] == ["b"]  # unknown counts as out of stock
    assert await oos.out_of_stock(["a", "b", "c"]) == {"a", "c"}
    result = await oos.apply([StockChange("a", True, 2)])
    assert result.flipped == [StockChange("a", True, 2)]
    assert await oos.out_of_stock(["a"]) == set()
    assert await oos.state("a") == StockChange("a", True, 2)


async def test_duplicates_and_stale_revisions_change_nothing(oos: OutOfStockSet) -> None:
    await oos.apply([StockChange("a", False, 5)])
    result = await oos.apply(
        [StockChange("a", True, 4), StockChange("a", False, 5), StockChange("a", True, 1)]
    )
    assert result.applied == [] and result.flipped == []
    assert await oos.state("a") == StockChange("a", False, 5)


async def test_within_one_batch_the_newest_wins_in_any_order(oos: OutOfStockSet) -> None:
    await oos.apply([StockChange("a", False, 3), StockChange("a", True, 2), StockChange("a", True, 4)])
    assert await oos.state("a") == StockChange("a", True, 4)
    await oos.apply([StockChange("b", True, 9), StockChange("b", False, 7)])
    assert await oos.state("b") == StockChange("b", True, 9)


async def test_same_state_newer_revision_applies_without_flip(oos: OutOfStockSet) -> None:
    await oos.apply([StockChange("a", False, 1)])
    result = await oos.apply([StockChange("a", False, 2)])
    assert result.applied == [StockChange("a", False, 2)] and result.flipped == []


async def test_concurrent_writers_converge_to_newest(oos: OutOfStockSet) -> None:
    """Two projector instances racing over shuffled deliveries of the same events."""
    events = [StockChange("hot", r % 2 == 0, r) for r in range(1, 201)]
    await asyncio.gather(
        *(oos.apply(events[i::7]) for i in range(7)), *(oos.apply(events[::-1][i::5]) for i in range(5))
    )
    assert await oos.state("hot") == StockChange("hot", True, 200)


async def test_large_page_membership_in_one_call(oos: OutOfStockSet) -> None:
    skus = [f"sku-{i}" for i in range(2500)]
    await oos.apply([StockChange(s, i % 10 != 0, 1) for i, s in enumerate(skus)])
    out = await oos.out_of_stock(skus[:150])
    assert out == {f"sku-{i}" for i in range(0, 150, 10)}
    assert len(await oos.out_of_stock(skus)) == 250


async def test_product_links(oos: OutOfStockSet) -> None:
    await oos.link([ProductLink("p1", "s1"), ProductLink("p2", "s1"), ProductLink("p3", "s3")])
    await oos.link([ProductLink("p2", "s1")])  # idempotent
    assert await oos.products_for(["s1", "s3", "none"]) == {"s1": ["p1", "p2"], "s3": ["p3"]}
    await oos.link([ProductLink("p1", "s2"), ProductLink("p3", None)])  # p1 changed sku, p3 removed
    assert await oos.products_for(["s1", "s2", "s3"]) == {"s1": ["p2"], "s2": ["p1"]}
    assert await oos.skus_of(["p1", "p2", "p3", "none"]) == {"p1": "s2", "p2": "s1"}
    assert await oos.skus_of([]) == {}


async def test_sold_out_products(oos: OutOfStockSet) -> None:
    """What other read models ask (recommendations never show what cannot be bought): out of stock, or
    no SKU at all (not in the catalog, or removed)."""
    await oos.link([ProductLink("p1", "s1"), ProductLink("p2", "s2"), ProductLink("p3", "s3")])
    await oos.link([ProductLink("p4", "s1")])  # two products sell one SKU
    await oos.apply([StockChange("s1", True, 1), StockChange("s2", False, 1)])  # s3: no stock event
    assert await sold_out_products(oos, ["p1", "p2", "p3", "p4", "unknown"]) == {"p2", "p3", "unknown"}
    await oos.apply([StockChange("s1", False, 2), StockChange("s3", True, 1)])
    assert await sold_out_products(oos, ["p1", "p3", "p4"]) == {"p1", "p4"}
    assert await sold_out_products(oos, []) == set()


async def test_clear_and_ping(oos: OutOfStockSet) -> None:
    await oos.ping()
    await oos.apply([StockChange("a", False, 1)])
    await oos.clear()
    assert await oos.state("a") is None
