"""One contract suite for the trending read model, run against every adapter (in-process and Redis).

Redis comes from the ``redis_url`` fixture (the local stack, or EMPORIUM_CACHE_URL); each test gets a key
prefix of its own and clears it at the end.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from emporium.adapters import TRENDING_STORE
from kernel.contracts.events import TrendingEntry
from read_models.trending import Trending, TrendingStore, TrendingStoreError
from read_models.trending.memory import MemoryTrendingStore
from read_models.trending.redis import RedisTrendingStore

END = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.cluster)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[TrendingStore]:
    if request.param == "memory":
        opened: TrendingStore = TRENDING_STORE.open("memory://")
    else:
        url = request.getfixturevalue("redis_url")
        opened = RedisTrendingStore.from_url(url, prefix=f"test:trending:{uuid.uuid4().hex}")
    await opened.start()
    try:
        yield opened
    finally:
        await opened.clear()
        await opened.close()


def entries(*keys: str) -> tuple[TrendingEntry, ...]:
    return tuple(TrendingEntry(key=k, score=10.0 - n + 0.25, count=20 - n) for n, k in enumerate(keys))


def trending(
    revision: int, *keys: str, kind: str = "queries", window: str = "hour", region: str = ""
) -> Trending:
    return Trending(
        kind=kind,
        window=window,
        region=region,
        entries=entries(*keys),
        window_end=END,
        revision=revision,
        generated_at=datetime(2026, 12, 6, 9, 1, 2, 345000, tzinfo=UTC),
        run_id=f"run-{revision}",
    )


async def test_round_trip_keeps_order_scores_and_metadata(store: TrendingStore) -> None:
    item = trending(1, "milk", "rice", "paneer", "atta", region="south")
    assert await store.put_many([item]) == 1
    assert await store.get("queries", "hour", "south") == item
    assert await store.get("queries", "hour", "") is None
    assert await store.get("queries", "day", "south") is None
    assert await store.get("products", "hour", "south") is None


async def test_lists_are_apart_by_kind_window_and_region(store: TrendingStore) -> None:
    items = [
        trending(1, f"{kind}-{window}-{region}", kind=kind, window=window, region=region)
        for kind in ("queries", "products")
        for window in ("hour", "day")
        for region in ("", "north", "south")
    ]
    assert await store.put_many(items) == len(items)
    for item in items:
        assert await store.get(item.kind, item.window, item.region) == item


async def test_newer_replaces_whole_list_and_stale_or_repeats_do_not(store: TrendingStore) -> None:
    await store.put_many([trending(5, "a", "b", "c")])
    assert await store.put_many([trending(4, "old"), trending(5, "same revision"), trending(1, "x")]) == 0
    assert await store.get("queries", "hour", "") == trending(5, "a", "b", "c")
    assert await store.put_many([trending(6, "z")]) == 1
    assert await store.get("queries", "hour", "") == trending(6, "z")
    assert await store.put_many([trending(7)]) == 1  # an empty list is a list too
    assert await store.get("queries", "hour", "") == trending(7)


async def test_out_of_order_within_one_batch_ends_at_the_newest(store: TrendingStore) -> None:
    await store.put_many([trending(3, "r3"), trending(9, "r9"), trending(2, "r2"), trending(9, "again")])
    assert await store.get("queries", "hour", "") == trending(9, "r9")


async def test_concurrent_writers_keep_the_newest(store: TrendingStore) -> None:
    await asyncio.gather(*(store.put_many([trending(n, f"r{n}")]) for n in (4, 1, 12, 7, 12, 3)))
    assert await store.get("queries", "hour", "") == trending(12, "r12")


async def test_large_revisions_compare_exactly(store: TrendingStore) -> None:
    """Run revisions may be timestamps in microseconds (about 2**51)."""
    base = 1_733_475_600_000_000
    await store.put_many([trending(base + 1, "newer")])
    assert await store.put_many([trending(base, "older")]) == 0
    assert await store.put_many([trending(base + 2, "newest")]) == 1
    found = await store.get("queries", "hour", "")
    assert found is not None and found.revision == base + 2


async def test_many_lists_in_one_batch(store: TrendingStore) -> None:
    items = [trending(1, f"q{n}", region=f"r{n}") for n in range(450)]  # more than one script call
    assert await store.put_many(items) == 450
    for item in items[::61]:
        assert await store.get("queries", "hour", item.region) == item


async def test_clear_and_ping(store: TrendingStore) -> None:
    await store.put_many([trending(1, "a")])
    await store.ping()
    await store.clear()
    assert await store.get("queries", "hour", "") is None


def test_volatility_is_declared() -> None:
    assert MemoryTrendingStore().volatile is True
    assert RedisTrendingStore.volatile is False


async def test_unreachable_redis_is_a_store_error() -> None:
    store = RedisTrendingStore.from_url("redis://127.0.0.1:1/0?socket_connect_timeout=1")
    try:
        with pytest.raises(TrendingStoreError):
            await store.get("queries", "hour", "")
        with pytest.raises(TrendingStoreError):
            await store.put_many([trending(1, "a")])
    finally:
        await store.close()
