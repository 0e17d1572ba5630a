"""Out-of-stock read model: the real-time stock truth for search.

The search index is only near-real-time (Elasticsearch refreshes about once a second), so search asks this
model about every result page and drops the SKUs that are out of stock. It keeps, per SKU, the newest
``{in_stock, revision}`` from ``StockLevelChanged`` events; an event whose revision is not newer than the
stored one changes nothing, so duplicates and out-of-order deliveries leave the newest state. A SKU no
stock event has named is out of stock: inventory has no stock record of it, so it cannot be reserved, and
search must not show it as buyable (one truth for "in stock").

It also keeps the SKU -> product ids directory learned from catalog events, because stock events are keyed
by SKU while the index's stock flag is keyed by product id.

Adapters: in-process (``memory://``, embedded; volatile, so the embedded projector re-reads the log into it
at start) and Redis (``redis://``; one Lua script per batch does the revision compare-and-set atomically and
one ``SMISMEMBER`` answers a whole result page in one round trip).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import msgspec
from redis.asyncio import Redis


class StockChange(msgspec.Struct, frozen=True):
    """One SKU's stock state as of ``revision`` (the inventory event's per-SKU revision)."""

    sku: str
    in_stock: bool
    revision: int


class ApplyResult(msgspec.Struct, frozen=True):
    """``applied``: changes newer than the stored state. ``flipped``: the applied ones that changed in_stock
    (a first-seen SKU counts as previously out of stock: unknown SKUs cannot be sold)."""

    applied: list[StockChange]
    flipped: list[StockChange]


class ProductLink(msgspec.Struct, frozen=True):
    """Catalog fact: ``product_id`` now sells ``sku`` (``sku=None``: the product was removed)."""

    product_id: str
    sku: str | None


class OutOfStockSet(Protocol):
    """Port. Adapters pass tests/contract/test_out_of_stock_set.py."""

    @property
    def volatile(self) -> bool:
        """True when the state does not survive the process (the owner must replay the log at start)."""
        ...

    async def apply(self, changes: Sequence[StockChange]) -> ApplyResult:
        """Store each change whose revision is newer than the stored one; say which applied and flipped.

        Within one call, changes are applied in order (a later, newer change for the same SKU wins).
        """
        ...

    async def out_of_stock(self, skus: Sequence[str]) -> set[str]:
        """Which of ``skus`` are out of stock (a SKU no stock event named is out of stock)."""
        ...

    async def state(self, sku: str) -> StockChange | None:
        """The stored state of one SKU, or None if no stock event was seen for it."""
        ...

    async def link(self, links: Sequence[ProductLink]) -> None:
        """Record which product ids sell which SKU (idempotent; a product moves when its SKU changes)."""
        ...

    async def products_for(self, skus: Sequence[str]) -> dict[str, list[str]]:
        """SKU -> product ids selling it (SKUs with none are left out)."""
        ...

    async def skus_of(self, product_ids: Sequence[str]) -> dict[str, str]:
        """Product id -> the SKU it sells (products the catalog does not list, or removed, are left out)."""
        ...

    async def clear(self) -> None:
        """Forget everything (tests and full rebuilds of this read model)."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


# In-process adapter ---------------------------------------------------------------------------


class MemoryOutOfStockSet:
    """Embedded adapter: plain dicts in the serving process. Single event loop, so no locking."""

    volatile = True

    def __init__(self) -> None:
        self._revisions: dict[str, int] = {}
        self._out: set[str] = set()
        self._sku_of: dict[str, str] = {}
        self._products: dict[str, set[str]] = {}

    async def apply(self, changes: Sequence[StockChange]) -> ApplyResult:
        applied: list[StockChange] = []
        flipped: list[StockChange] = []
        for change in changes:
            if self._revisions.get(change.sku, -1) >= change.revision:
                continue
            was_in_stock = change.sku in self._revisions and change.sku not in self._out
            self._revisions[change.sku] = change.revision
            if change.in_stock:
                self._out.discard(change.sku)
            else:
                self._out.add(change.sku)
            applied.append(change)
            if was_in_stock != change.in_stock:
                flipped.append(change)
        return ApplyResult(applied, flipped)

    async def out_of_stock(self, skus: Sequence[str]) -> set[str]:
        out, known = self._out, self._revisions
        return {sku for sku in skus if sku in out or sku not in known}

    async def state(self, sku: str) -> StockChange | None:
        revision = self._revisions.get(sku)
        if revision is None:
            return None
        return StockChange(sku, sku not in self._out, revision)

    async def link(self, links: Sequence[ProductLink]) -> None:
        for link in links:
            old = self._sku_of.get(link.product_id)
            if old is not None and old != link.sku:
                members = self._products.get(old)
                if members is not None:
                    members.discard(link.product_id)
                    if not members:
                        del self._products[old]
            if link.sku is None:
                self._sku_of.pop(link.product_id, None)
            else:
                self._sku_of[link.product_id] = link.sku
                self._products.setdefault(link.sku, set()).add(link.product_id)

    async def products_for(self, skus: Sequence[str]) -> dict[str, list[str]]:
        return {sku: sorted(self._products[sku]) for sku in skus if self._products.get(sku)}

    async def skus_of(self, product_ids: Sequence[str]) -> dict[str, str]:
        sku_of = self._sku_of
        return {p: sku_of[p] for p in product_ids if p in sku_of}

    async def clear(self) -> None:
        self._revisions.clear()
        self._out.clear()
        self._sku_of.clear()
        self._products.clear()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


async def sold_out_products(stock: OutOfStockSet, product_ids: Sequence[str]) -> set[str]:
    """Which of ``product_ids`` cannot be bought now: out of stock, or not in the catalog at all (no SKU
    to sell). Other read models get this through the composition root, as a plain callable."""
    if not product_ids:
        return set()
    skus = await stock.skus_of(product_ids)
    out = await stock.out_of_stock(sorted(set(skus.values())))
    return {p for p in product_ids if skus.get(p) is None or skus[p] in out}


# Redis adapter --------------------------------------------------------------------------------

_LUA_DIR = Path(__file__).with_name("lua")


def _chunks(items: Sequence[object], size: int) -> Iterable[Sequence[object]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class RedisOutOfStockSet:
    """Cluster adapter. Keys share one hash tag so the scripts stay valid on Redis Cluster.

    ``{prefix}:rev``  hash  sku -> newest revision seen
    ``{prefix}:oos``  set   skus out of stock
    ``{prefix}:psku`` hash  product id -> sku
    ``{prefix}:skup`` hash  sku -> JSON list of product ids
    """

    volatile = False
    BATCH = 500  # changes per script call: bounded so one call never blocks Redis for long

    def __init__(self, client: Redis, prefix: str = "emporium:stock") -> None:
        self._redis = client
        tag = "{" + prefix + "}"
        self._rev, self._oos = f"{tag}:rev", f"{tag}:oos"
        self._psku, self._skup = f"{tag}:psku", f"{tag}:skup"
        self._apply = self._redis.register_script((_LUA_DIR / "oos_apply.lua").read_text())
        self._link = self._redis.register_script((_LUA_DIR / "oos_link.lua").read_text())

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "emporium:stock") -> RedisOutOfStockSet:
        return cls(Redis.from_url(url, decode_responses=True), prefix=prefix)

    async def apply(self, changes: Sequence[StockChange]) -> ApplyResult:
        applied: list[StockChange] = []
        flipped: list[StockChange] = []
        for chunk in _chunks(changes, self.BATCH):
            args: list[str | int] = []
            for change in chunk:
                assert isinstance(change, StockChange)
                args += [change.sku, 1 if change.in_stock else 0, change.revision]
            # The script answers 2*position + flipped for every applied change (one round trip per chunk).
            for code in await self._apply(keys=[self._rev, self._oos], args=args):
                change = chunk[int(code) // 2 - 1]
                assert isinstance(change, StockChange)
                applied.append(change)
                if int(code) % 2:
                    flipped.append(change)
        return ApplyResult(applied, flipped)

    async def out_of_stock(self, skus: Sequence[str]) -> set[str]:
        if not skus:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.smismember(self._oos, list(skus))
            pipe.hmget(self._rev, list(skus))
            flags, revisions = await pipe.execute()
        return {
            sku
            for sku, flag, revision in zip(skus, flags, revisions, strict=True)
            if flag or revision is None
        }

    async def state(self, sku: str) -> StockChange | None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(self._rev, sku)
            pipe.sismember(self._oos, sku)
            revision, out = await pipe.execute()
        if revision is None:
            return None
        return StockChange(sku, not out, int(revision))

    async def link(self, links: Sequence[ProductLink]) -> None:
        for chunk in _chunks(links, self.BATCH):
            args: list[str] = []
            for link in chunk:
                assert isinstance(link, ProductLink)
                args += [link.product_id, link.sku or ""]
            await self._link(keys=[self._psku, self._skup], args=args)

    async def products_for(self, skus: Sequence[str]) -> dict[str, list[str]]:
        if not skus:
            return {}
        values = await self._redis.hmget(self._skup, list(skus))
        return {
            sku: msgspec.json.decode(value, type=list[str])
            for sku, value in zip(skus, values, strict=True)
            if value
        }

    async def skus_of(self, product_ids: Sequence[str]) -> dict[str, str]:
        if not product_ids:
            return {}
        values = await self._redis.hmget(self._psku, list(product_ids))  # decode_responses: str or None
        return {p: str(sku) for p, sku in zip(product_ids, values, strict=True) if sku}

    async def clear(self) -> None:
        await self._redis.delete(self._rev, self._oos, self._psku, self._skup)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
