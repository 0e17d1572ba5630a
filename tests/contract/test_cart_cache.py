"""One contract suite for the cart cache, run against every adapter (in-process and Redis): a put keeps
the newer copy (version, then price generation), a read answers the copy with the current generation in
one call, and a copy outlives a burst of other carts (none is dropped before its TTL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from commerce.cart_cache import CachedCart, CartCache, MemoryCartCache
from commerce.cart_cache_redis import RedisCartCache
from commerce.domain import CartLine, Price


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.cluster)])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[CartCache]:
    if request.param == "memory":
        adapter: CartCache = MemoryCartCache()
    else:
        adapter = RedisCartCache.from_url(
            request.getfixturevalue("redis_url"), prefix=f"test:carts:{uuid.uuid4().hex}"
        )
    try:
        yield adapter
    finally:
        await adapter.clear()
        await adapter.close()


def line(sku: str, quantity: int = 1, price: str = "9.99") -> CartLine:
    current = Price(sku=sku, product_id=f"p-{sku}", price=Decimal(price), title=f"T {sku}", revision=3)
    return CartLine(
        sku=sku, product_id=f"p-{sku}", quantity=quantity, seen_price=Decimal("9.5"), current=current,
        updated_at=12.5,
    )  # fmt: skip


def cart(version: int, *skus: str, prices: int = 0) -> CachedCart:
    return CachedCart(version=version, prices=prices, lines=[line(s) for s in skus])


async def test_a_miss_then_the_copy_as_stored(cache: CartCache) -> None:
    assert await cache.get("u1") == (None, 0)
    stored = CachedCart(version=1, prices=0, lines=[line("s:A", 2), CartLine(
        sku="s:gone", product_id="p-gone", quantity=1, seen_price=Decimal("1"), current=None
    )])  # fmt: skip
    assert await cache.put("u1", stored)
    got, generation = await cache.get("u1")
    assert got == stored and generation == 0
    assert (await cache.get("u2"))[0] is None


async def test_a_put_keeps_the_newer_version(cache: CartCache) -> None:
    assert await cache.put("u1", cart(5, "s:A", "s:B"))
    assert not await cache.put("u1", cart(4, "s:A"))  # a slow fill of an older state
    assert not await cache.put("u1", cart(5, "s:A", "s:B"))  # the same again
    assert (await cache.get("u1"))[0] == cart(5, "s:A", "s:B")
    assert await cache.put("u1", cart(6, "s:B"))
    assert (await cache.get("u1"))[0] == cart(6, "s:B")


async def test_price_generation_makes_copies_stale_until_refilled(cache: CartCache) -> None:
    assert await cache.put("u1", cart(2, "s:A"))
    assert await cache.prices_changed(1) == 1
    assert await cache.prices_changed(0) == 1  # a late copy of an older generation never lowers it
    got, generation = await cache.get("u1")
    assert got is not None and got.prices == 0 and generation == 1  # the caller sees it is stale
    assert await cache.put("u1", cart(2, "s:A", prices=1))  # same version, newer prices: refilled
    assert not await cache.put("u1", cart(2, "s:A", prices=0))  # an older-generation fill loses
    assert (await cache.get("u1")) == (cart(2, "s:A", prices=1), 1)


async def test_concurrent_puts_leave_the_newest(cache: CartCache) -> None:
    versions = list(range(1, 41))
    await asyncio.gather(*(cache.put("race", cart(v, f"s:{v}")) for v in reversed(versions)))
    assert (await cache.get("race"))[0] == cart(40, "s:40")


async def test_clear(cache: CartCache) -> None:
    await cache.put("u1", cart(1, "s:A"))
    await cache.clear()
    assert (await cache.get("u1"))[0] is None


async def test_memory_copies_are_not_dropped_before_their_ttl() -> None:
    now = [0.0]
    cache = MemoryCartCache(ttl_s=10.0, max_carts=2, clock=lambda: now[0])
    assert await cache.put("a", cart(1, "s:A")) and await cache.put("b", cart(1, "s:B"))
    assert not await cache.put("c", cart(1, "s:C"))  # full of young copies: not kept (a miss later)
    assert await cache.put("a", cart(2, "s:A"))  # a cached cart still takes its edits
    now[0] = 10.5  # "b" is past its TTL
    assert (await cache.get("b"))[0] is None
    assert await cache.put("c", cart(1, "s:C"))
    assert (await cache.get("c"))[0] == cart(1, "s:C")
