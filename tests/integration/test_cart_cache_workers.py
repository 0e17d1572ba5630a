"""The cart cache between API workers: two ``CommerceService``s (each with its own store connections and
cache client, as two processes have) over one relational store and one cache. Embedded: SQLite and the
in-process cache, shared (one process); cluster: MySQL and Redis. Every edit acknowledged by one worker
is seen by the next read of the other, concurrent edits through both never make the cache show a lost
line, and a price change reaches cached carts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from inventory_support import drop_mysql_database, mysql_target, mysql_url_with_database, unique_name

from commerce.cart_cache import CachedCart, CartCache, MemoryCartCache
from commerce.cart_cache_redis import RedisCartCache
from commerce.domain import CommerceUnavailable, HeldStock, Price
from commerce.mysql import MysqlCommerceStore
from commerce.port import CommerceStore, PriceUpdate
from commerce.prices import PricesProjection
from commerce.service import CommerceService, Shopper
from commerce.sqlite import SqliteCommerceStore
from kernel.contracts.events import Product, ProductUpserted, new_event

SKUS = [f"sup:S-{n}" for n in range(24)]


class PlentyOfStock:
    """``StockHolds`` with every SKU available (these tests are about carts, not holds)."""

    async def hold(self, lines: Sequence[tuple[str, int]], **_: Any) -> HeldStock:
        return HeldStock(reservation_ids=tuple(f"r-{sku}" for sku, _ in lines), expires_at=1e12)

    async def confirm(self, reservation_ids: Sequence[str]) -> None:
        return None

    async def release(self, reservation_ids: Sequence[str]) -> None:
        return None

    async def available(self, skus: Sequence[str]) -> dict[str, int]:
        return dict.fromkeys(skus, 1000)


class Workers(NamedTuple):
    a: CommerceService
    b: CommerceService
    store: CommerceStore  # a's store: the truth
    cache: CartCache  # a's cache client


def price(sku: str, amount: str, revision: int) -> PriceUpdate:
    return PriceUpdate(
        sku, f"p-{sku}", Price(sku=sku, product_id=f"p-{sku}", price=Decimal(amount)), revision
    )


@pytest.fixture(params=["embedded", pytest.param("cluster", marks=pytest.mark.cluster)])
async def workers(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Workers]:
    stores: list[Any]
    caches: list[CartCache]
    db_url = ""
    if request.param == "embedded":
        store = SqliteCommerceStore(tmp_path / "commerce.db")
        memory = MemoryCartCache()
        stores, caches = [store, store], [memory, memory]
    else:
        db_url = mysql_url_with_database(request.getfixturevalue("mysql_url"), unique_name("cart_cache"))
        redis_url, prefix = request.getfixturevalue("redis_url"), f"test:carts:{uuid.uuid4().hex}"
        stores = [MysqlCommerceStore(mysql_target(db_url), pool_size=8) for _ in range(2)]
        caches = [RedisCartCache.from_url(redis_url, prefix=prefix) for _ in range(2)]
    for store in dict.fromkeys(stores):
        await store.start()
    try:
        await stores[0].put_prices([price(sku, "10", 1) for sku in SKUS])
        a, b = (CommerceService(s, PlentyOfStock(), carts=c) for s, c in zip(stores, caches, strict=True))
        yield Workers(a, b, stores[0], caches[0])
    finally:
        await caches[0].clear()
        for cache in dict.fromkeys(caches):
            await cache.close()
        for store in dict.fromkeys(stores):
            await store.close()
        if db_url:
            drop_mysql_database(db_url)


def skus_of(view: Any) -> dict[str, int]:
    return {item.sku: item.quantity for item in view.items}


async def test_an_edit_through_one_worker_is_read_by_the_other(workers: Workers) -> None:
    a, b = workers.a, workers.b
    assert skus_of(await b.cart("u1")) == {}  # cached empty now
    for n, sku in enumerate(SKUS[:6]):
        writer, reader = (a, b) if n % 2 else (b, a)
        await writer.set_item("u1", sku, n + 1, Shopper())
        assert skus_of(await reader.cart("u1")) == {s: i + 1 for i, s in enumerate(SKUS[: n + 1])}
    await a.remove_item("u1", SKUS[0])
    assert SKUS[0] not in skus_of(await b.cart("u1"))
    await b.set_item("guest", SKUS[10], 2, Shopper())
    await a.cart("guest")  # cached on both sides of the merge
    merged = await a.merge("u1", "guest")
    assert skus_of(merged)[SKUS[10]] == 2
    assert skus_of(await b.cart("guest")) == {} and skus_of(await b.cart("u1")) == skus_of(merged)


async def test_concurrent_edits_through_two_workers_lose_no_line(workers: Workers) -> None:
    a, b = workers.a, workers.b
    await asyncio.gather(a.cart("busy"), b.cart("busy"))  # both start from a cached (empty) copy

    async def edits(worker: CommerceService, skus: list[str]) -> None:
        for sku in skus:
            await worker.set_item("busy", sku, 2, Shopper())
            await worker.cart("busy")  # reads (and fills) interleave with the other worker's edits

    await asyncio.gather(*(edits(w, SKUS[n::4]) for n, w in enumerate([a, b, a, b])))
    truth = {line.sku: line.quantity for line in await workers.store.get_cart("busy")}
    assert truth == dict.fromkeys(SKUS, 2)
    assert skus_of(await a.cart("busy")) == truth and skus_of(await b.cart("busy")) == truth
    cached, _ = await workers.cache.get("busy")
    assert cached is not None and cached.version == (await workers.store.read_cart("busy")).version


async def test_a_slow_fill_never_replaces_a_later_edit(workers: Workers) -> None:
    a, b = workers.a, workers.b
    await a.set_item("slow", SKUS[0], 1, Shopper())
    old = await workers.store.read_cart("slow")  # a fill read the store here, then stalled ...
    await b.set_item("slow", SKUS[1], 1, Shopper())  # ... while another worker edited the cart
    stale = CachedCart(version=old.version, prices=old.prices, lines=old.lines)
    assert not await workers.cache.put("slow", stale)
    assert skus_of(await a.cart("slow")) == {SKUS[0]: 1, SKUS[1]: 1}


async def test_a_price_change_reaches_cached_carts(workers: Workers) -> None:
    a, b = workers.a, workers.b
    await a.set_item("p1", SKUS[0], 1, Shopper())
    assert (await b.cart("p1")).items[0].unit_price == "10"
    product = Product(product_id=f"p-{SKUS[0]}", supplier_id="sup", sku="S-0", title="T", price=Decimal("12"))
    event = new_event(ProductUpserted(product=product), key=product.product_id, revision=2, producer="t")
    await PricesProjection(workers.store, workers.cache).handle([event])  # the price list, then the bump
    item = (await b.cart("p1")).items[0]
    assert (item.unit_price, item.price_changed) == ("12", True)


async def test_checkout_confirm_empties_the_cached_cart(workers: Workers) -> None:
    a, b = workers.a, workers.b
    await a.set_item("buyer", SKUS[0], 1, Shopper())
    assert skus_of(await b.cart("buyer")) == {SKUS[0]: 1}
    checkout, created = await a.checkout("buyer", "k1", accept_price_changes=False, hold_seconds=60)
    assert created
    await b.confirm(checkout.checkout_id, "pay-1")
    assert skus_of(await a.cart("buyer")) == {} and skus_of(await b.cart("buyer")) == {}


async def test_a_cache_that_is_down_sends_reads_to_the_store_and_fails_edits(tmp_path: Path) -> None:
    store = SqliteCommerceStore(tmp_path / "commerce.db")
    await store.start()
    down = RedisCartCache.from_url("redis://127.0.0.1:1/0")  # nothing listens there
    try:
        await store.put_prices([price(SKUS[0], "10", 1)])
        await store.set_line("u1", Price(sku=SKUS[0], product_id=f"p-{SKUS[0]}", price=Decimal("10")), 1, 1.0)
        service = CommerceService(store, PlentyOfStock(), carts=down)
        assert skus_of(await service.cart("u1")) == {SKUS[0]: 1}
        with pytest.raises(CommerceUnavailable):  # committed, but not acknowledged: the cache could not
            await service.set_item("u1", SKUS[0], 3, Shopper())  # follow it (a retry is idempotent)
    finally:
        await down.close()
        await store.close()
