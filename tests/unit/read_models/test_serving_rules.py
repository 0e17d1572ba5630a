"""The read side's rules without I/O: what a storefront is shown (own list, popularity fallback by region,
sold-out products dropped before ``limit``, related without the product itself, trending by region)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from kernel.contracts.events import TrendingEntry
from read_models.availability import buyable
from read_models.recommendations import PopularProducts, Recommendations, RelatedProducts
from read_models.regions import InvalidRegion
from read_models.serving import InvalidProductId, RecommendationsReader, TrendingReader
from read_models.trending import InvalidTrendingRequest, Trending
from read_models.trending.memory import MemoryTrendingStore


class DictStore:
    """Just enough of the recommendations store for the reader (reads only)."""

    def __init__(self) -> None:
        self.users: dict[str, Recommendations] = {}
        self.related: dict[str, RelatedProducts] = {}
        self.popular: dict[str, PopularProducts] = {}

    async def get(self, user_id: str) -> Recommendations | None:
        return self.users.get(user_id)

    async def get_related(self, product_id: str) -> RelatedProducts | None:
        return self.related.get(product_id)

    async def get_popular(self, region: str) -> PopularProducts | None:
        return self.popular.get(region)


SOLD_OUT = {"gone", "gone-too"}


async def sold_out(product_ids: Sequence[str], /) -> set[str]:
    return SOLD_OUT.intersection(product_ids)


def reader(store: DictStore) -> RecommendationsReader:
    return RecommendationsReader(store, sold_out)  # type: ignore[arg-type]


def popular(region: str, *ids: str) -> PopularProducts:
    return PopularProducts(region=region, product_ids=ids, model="popularity", revision=1)


def test_buyable_keeps_rank_order_without_sold_out_and_repeats() -> None:
    assert buyable(["a", "gone", "b", "a", "c"], SOLD_OUT) == ["a", "b", "c"]
    assert buyable(["gone", "a", "b", "c"], SOLD_OUT, limit=2) == ["a", "b"]  # limit counts buyable ones
    assert buyable([], SOLD_OUT, limit=3) == []


async def test_own_list_first_with_sold_out_dropped() -> None:
    store = DictStore()
    store.users["u1"] = Recommendations(user_id="u1", product_ids=("gone", "a", "b"), model="als", revision=1)
    store.popular[""] = popular("", "p")
    got = await reader(store).for_user("u1", limit=1)
    assert (got.product_ids, got.source, got.model) == (["a"], "personal", "als")


async def test_fallback_to_the_regions_popular_list_then_every_regions() -> None:
    store = DictStore()
    got = await reader(store).for_user("new", region="south")
    assert got.product_ids == [] and got.source is None  # nothing computed yet
    store.popular[""] = popular("", "x", "gone")
    store.popular["south"] = popular("south", "s")
    south = await reader(store).for_user("new", region="south")
    assert (south.product_ids, south.source, south.region, south.model) == (
        ["s"],
        "popular",
        "south",
        "popularity",
    )
    west = await reader(store).for_user("new", region="west")
    assert (west.product_ids, west.region) == (["x"], "")


async def test_a_wholly_sold_out_own_list_falls_back_to_popular() -> None:
    store = DictStore()
    store.users["u1"] = Recommendations(
        user_id="u1", product_ids=("gone", "gone-too"), model="als", revision=1
    )
    store.popular[""] = popular("", "x")
    got = await reader(store).for_user("u1")
    assert (got.product_ids, got.source) == (["x"], "popular")


async def test_related_leaves_out_the_product_itself_and_sold_out_ones() -> None:
    store = DictStore()
    store.related["a"] = RelatedProducts(
        product_id="a", product_ids=("a", "gone", "b", "c"), model="bt", revision=1
    )
    got = await reader(store).related("a", limit=5)
    assert (got.product_ids, got.model) == (["b", "c"], "bt")
    assert (await reader(store).related("zzz")).product_ids == []


async def test_bad_ids_and_regions_are_refused() -> None:
    with pytest.raises(InvalidRegion):
        await reader(DictStore()).for_user("u1", region="no spaces")
    with pytest.raises(InvalidProductId):
        await reader(DictStore()).related(" ")


def trending(kind: str, region: str, *keys: str) -> Trending:
    return Trending(
        kind=kind,
        window="day",
        region=region,
        entries=tuple(TrendingEntry(key=k, score=1.0, count=5) for k in keys),
        window_end=datetime(2026, 12, 6, tzinfo=UTC),
        revision=1,
    )


async def test_trending_products_drop_sold_out_but_queries_are_as_computed() -> None:
    store = MemoryTrendingStore()
    await store.put_many(
        [
            trending("products", "", "gone", "a", "b"),
            trending("queries", "", "gone", "milk"),
            trending("queries", "north", "rice"),
        ]
    )
    read = TrendingReader(store, sold_out)
    products = await read.get(window="day", kind="products", limit=1)
    assert [e.key for e in products.entries] == ["a"]
    queries = await read.get(window="day", kind="queries", region="south")
    assert [e.key for e in queries.entries] == ["gone", "milk"] and queries.region == ""  # south has none
    north = await read.get(window="day", kind="queries", region="north")
    assert [e.key for e in north.entries] == ["rice"] and north.region == "north"
    empty = await read.get(window="hour", kind="queries", region="north")
    assert empty.entries == [] and empty.region == "north" and empty.window_end is None
    with pytest.raises(InvalidTrendingRequest):
        await read.get(window="week", kind="queries")
