"""The storefront's result cache: index answers and response pages, never the stock filter.

Storefront traffic repeats itself (the head of the query distribution, page reloads, facet clicks), and
the index is near-real-time anyway, so an index answer can be reused until the index changes: the
in-process projector reports every index write (``index_changed``), and ``ttl_s`` bounds the staleness
when the index is written by other processes (``emporium project``, a rebuild). The exact out-of-stock
filter still runs on every request, so a stock-out is hidden at once either way: a page
(``CachedPage``) is served only if the live out-of-stock set still says the same about every item the
page examined.

A write of new content (products, restocks) empties the cache at once. A write that only flags
stock-outs spares what was computed before it for ``stock_out_grace_s`` more: those pages already hide
the items (the re-check above); only their ``total`` and facet counts may still include them, as an
index between refreshes would. Without the grace, a flash sale would empty the cache with every sale
that empties a shelf.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Generic, NamedTuple, TypeVar

import msgspec
from cachetools import TTLCache

from search.port import IndexChange, SearchResult
from search.schemas import SearchResponse

_V = TypeVar("_V")


class CachedPage(msgspec.Struct, frozen=True):
    """A response page and the stock facts it was decided on.

    The page is exact only while every SKU it examined (returned or dropped) has the same out-of-stock
    state as when it was computed, so a reuse re-checks exactly those SKUs against the live set.
    """

    response: SearchResponse
    examined: tuple[str, ...]
    out: frozenset[str]  # which of ``examined`` were out of stock
    stamp: float  # when its computation started (``ResultCache.stamp``): what it may have missed


class _Stamped(NamedTuple, Generic[_V]):
    stamp: float  # when its computation started
    value: _V


class ResultCache:
    """Index answers (``SearchQuery`` bytes -> ``SearchResult``) and response pages, LRU and TTL bound.

    Pages answer the repeats; answers serve what pages cannot (a page gone stale after a stock-out,
    ``deliver_to`` pages, deeper fetch rounds). An answer holds full documents and a page only what it
    shows, so by default it keeps a sixteenth as many answers as pages.
    """

    def __init__(
        self,
        max_entries: int = 16384,
        ttl_s: float = 1.0,
        max_answers: int | None = None,
        stock_out_grace_s: float = 1.0,
    ) -> None:
        self.max_entries = max_entries
        self.max_answers = max(64, max_entries // 16) if max_answers is None else max_answers
        self.ttl_s = ttl_s
        self.stock_out_grace_s = stock_out_grace_s
        self._answers: TTLCache[bytes, _Stamped[SearchResult]] = TTLCache(self.max_answers, ttl_s)
        self._pages: TTLCache[bytes, _Stamped[CachedPage]] = TTLCache(max_entries, ttl_s)
        self._stock_outs: deque[float] = deque()  # when stock-out writes were reported, oldest first
        self._computed_after = -math.inf  # what was computed before this is out of date

    @staticmethod
    def stamp() -> float:
        """Take before computing what will be cached: the ``put`` then knows what it may have missed."""
        return time.monotonic()

    def index_changed(self, change: IndexChange) -> None:
        if change is IndexChange.STOCK_OUTS:
            self._stock_outs.append(time.monotonic())
        else:
            self.invalidate()

    def invalidate(self) -> None:
        self._computed_after = time.monotonic()
        self._stock_outs.clear()
        self._answers.clear()
        self._pages.clear()

    def get(self, key: bytes) -> SearchResult | None:
        return self._get(self._answers, key)

    def put(self, key: bytes, stamp: float, result: SearchResult) -> None:
        self._put(self._answers, key, stamp, result)

    def get_page(self, key: bytes) -> CachedPage | None:
        return self._get(self._pages, key)

    def put_page(self, key: bytes, page: CachedPage) -> None:
        self._put(self._pages, key, page.stamp, page)

    def _current(self, stamp: float) -> bool:
        """Whether what was computed at ``stamp`` still stands: no content change since, and no
        stock-out since whose grace is over."""
        outs, now = self._stock_outs, time.monotonic()
        while outs and outs[0] + self.stock_out_grace_s <= now:
            self._computed_after = outs.popleft()
        return stamp > self._computed_after

    def _get(self, entries: TTLCache[bytes, _Stamped[_V]], key: bytes) -> _V | None:
        entry = entries.get(key)
        if entry is None:
            return None
        if not self._current(entry.stamp):
            del entries[key]
            return None
        return entry.value

    def _put(self, entries: TTLCache[bytes, _Stamped[_V]], key: bytes, stamp: float, value: _V) -> None:
        if self._current(stamp):  # else the index changed while this was computed
            entries[key] = _Stamped(stamp, value)
