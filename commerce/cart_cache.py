"""The cart cache port and its in-process adapter: cart reads come from here, the store is the truth.

A cached cart is the store's ``CartState``: its lines at a cart *version* (every change to the lines bumps
it in the same transaction) with their current prices at a *price generation* (every change to the
price list bumps it in the same transaction), both read in the transaction that read the lines.
Correctness (ADR 0010):

* every ``put`` is a compare-and-set: the cache keeps the copy with the larger version (at an equal
  version, the later generation), so a slow fill can never replace what a later write stored;
* a cart edit stores the cart after it (write-through) before the edit is acknowledged, so no worker
  serves a cart older than an acknowledged edit;
* the price projector copies the store's generation into the cache after each batch of prices
  (``prices_changed``, never lowering it); a copy at an older generation is a miss;
* an entry is dropped only after ``ttl_s`` without a write (never earlier, in-process or in Redis), far
  longer than any store operation can be in flight.

Adapters (``tests/contract/test_cart_cache.py`` runs one suite against both): ``MemoryCartCache``
(``memory://``, one process: the embedded default) and ``commerce.cart_cache_redis.RedisCartCache``
(``redis://``, shared by every API worker and the projector).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import msgspec

from commerce.domain import CartLine

DEFAULT_TTL_S = 900.0
DEFAULT_MAX_CARTS = 100_000


class CachedCart(msgspec.Struct, frozen=True, kw_only=True):
    version: int  # the store's cart version the lines are at
    prices: int  # the store's price generation their current prices are at
    lines: list[CartLine]


class CartCache(Protocol):
    @property
    def shared(self) -> bool:
        """True when every process sees the same copies (Redis); False: this process only."""
        ...

    async def get(self, cart_id: str) -> tuple[CachedCart | None, int]:
        """The cached copy (None on a miss) and the price generation the cache knows, in one read: a copy
        at an older generation is stale."""
        ...

    async def put(self, cart_id: str, cart: CachedCart) -> bool:
        """Store ``cart`` unless the cached copy is as new (a larger version, or the same version at the
        same or a later generation); True when stored."""
        ...

    async def prices_changed(self, generation: int) -> int:
        """Raise the known price generation to the store's ``generation`` (never lower it): copies at an
        older one become misses. Returns the known generation."""
        ...

    async def clear(self) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def newer(cart: CachedCart, version: int, prices: int) -> bool:
    """Whether ``cart`` should replace a cached copy at (``version``, ``prices``)."""
    return cart.version > version or (cart.version == version and cart.prices > prices)


class MemoryCartCache:
    """In-process (``memory://``): a dict in insertion order of the last write. Past ``max_carts`` the
    copies older than ``ttl_s`` go first; when none is that old, the new copy is not kept (a miss later),
    so no copy is ever dropped early (a dropped copy would let a slow fill store an older cart)."""

    shared = False

    def __init__(
        self,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        max_carts: int = DEFAULT_MAX_CARTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s, self.max_carts, self.clock = ttl_s, max_carts, clock
        self._carts: OrderedDict[str, tuple[float, CachedCart]] = OrderedDict()
        self._generation = 0

    def _live(self, cart_id: str, now: float) -> CachedCart | None:
        found = self._carts.get(cart_id)
        if found is None:
            return None
        if now - found[0] >= self.ttl_s:
            del self._carts[cart_id]
            return None
        return found[1]

    async def get(self, cart_id: str) -> tuple[CachedCart | None, int]:
        return self._live(cart_id, self.clock()), self._generation

    async def put(self, cart_id: str, cart: CachedCart) -> bool:
        now = self.clock()
        current = self._live(cart_id, now)
        if current is not None and not newer(cart, current.version, current.prices):
            return False
        if current is None and not self._room(now):
            return False
        self._carts[cart_id] = (now, cart)
        self._carts.move_to_end(cart_id)
        return True

    def _room(self, now: float) -> bool:
        while len(self._carts) >= self.max_carts:
            oldest, (written, _) = next(iter(self._carts.items()))
            if now - written < self.ttl_s:
                return False
            del self._carts[oldest]
        return True

    async def prices_changed(self, generation: int) -> int:
        self._generation = max(self._generation, generation)
        return self._generation

    async def clear(self) -> None:
        self._carts.clear()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._carts.clear()
