"""The search-index port: what the storefront asks of a full-text engine.

Adapters: Tantivy (embedded, ``tantivy:///PATH``) and Elasticsearch (``http(s)://HOST:PORT``). Both pass
tests/contract/test_search_index.py. Writes are versioned by the event revision: a document is replaced
only by a strictly newer revision (Elasticsearch external versioning; the same rule in Tantivy).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

import msgspec


class SearchDocument(msgspec.Struct, kw_only=True, frozen=True):
    """One product as the index stores it (built by the projector from catalog events)."""

    product_id: str
    revision: int
    supplier_id: str
    sku: str
    title: str
    description: str = ""
    brand: str = ""
    category_path: tuple[str, ...] = ()  # ("Fashion", "Men", "Shirts")
    price: Decimal
    currency: str = "INR"
    rating: float | None = None
    in_stock: bool = True
    warehouses: tuple[str, ...] = ()  # warehouses holding stock; the delivery filter uses them
    popularity: float = 0.0
    created_at_ms: int = 0  # first-seen time, for sort=newest


class Sort(StrEnum):
    RELEVANCE = "relevance"
    PRICE_ASC = "price_asc"
    PRICE_DESC = "price_desc"
    RATING = "rating"
    NEWEST = "newest"


class IndexChange(StrEnum):
    """What an index write changed, for whoever keeps search answers (``ResultCache``)."""

    CONTENT = "content"  # products written or removed, or restocked: any answer may change
    STOCK_OUTS = "stock_outs"  # only in-stock flags cleared: answers can only lose those products


class PriceRange(msgspec.Struct, frozen=True):
    """A price facet bucket: [low, high); None means unbounded."""

    key: str
    low: Decimal | None
    high: Decimal | None


CATEGORY_SEPARATOR = ">"
MAX_CATEGORY_DEPTH = 6  # facet levels kept per document; deeper paths still filter and match
MAX_RESULT_WINDOW = 10_000  # offset + limit cap (as Elasticsearch); deeper pages use search_after


def category_key(path: Sequence[str]) -> str:
    """The keyword for a category path prefix: ("Fashion", "Men") -> "Fashion>Men"."""
    return CATEGORY_SEPARATOR.join(part.strip() for part in path if part.strip())


class InvalidQuery(ValueError):
    """A query the index cannot answer (offset beyond the window, malformed search_after)."""


class SearchIndexError(RuntimeError):
    """The engine failed (unreachable, a write rejected for a reason other than a stale revision).

    Writers must not commit their consumer offsets after it: nothing was lost, the batch is retried.
    """


DEFAULT_PRICE_RANGES: tuple[PriceRange, ...] = (
    PriceRange("0-100", None, Decimal(100)),
    PriceRange("100-500", Decimal(100), Decimal(500)),
    PriceRange("500-1000", Decimal(500), Decimal(1000)),
    PriceRange("1000-5000", Decimal(1000), Decimal(5000)),
    PriceRange("5000+", Decimal(5000), None),
)


class SearchQuery(msgspec.Struct, kw_only=True, frozen=True):
    text: str = ""  # empty: match all
    category: tuple[str, ...] = ()  # a category path prefix: ("Fashion", "Men") matches everything below
    brands: tuple[str, ...] = ()  # any of these (exact keyword)
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    rating_min: float | None = None
    in_stock_only: bool = False  # the index's stock flag (near-real-time; the OOS read model is exact)
    warehouses: tuple[str, ...] | None = None  # only products held in one of these (delivery filter)
    exclude_ids: tuple[str, ...] = ()
    sort: Sort = Sort.RELEVANCE
    limit: int = 20
    search_after: tuple[float | int | str, ...] | None = None  # from a previous hit's sort_values
    offset: int = 0  # used when search_after is None
    with_facets: bool = True
    with_highlights: bool = True
    facet_size: int = 20  # buckets per terms facet (brand, category)


class Hit(msgspec.Struct, kw_only=True, frozen=True):
    document: SearchDocument
    score: float
    sort_values: tuple[float | int | str, ...]  # opaque key for search_after; unique per document
    highlights: dict[str, list[str]] = {}  # "title"/"description": HTML-escaped fragments, <em> marks


class FacetBucket(msgspec.Struct, frozen=True):
    value: str
    count: int


class SearchResult(msgspec.Struct, kw_only=True, frozen=True):
    hits: list[Hit]
    total: int
    # "category" (the level below the category filter, values like "Fashion>Men"), "brand", "price"
    # (DEFAULT_PRICE_RANGES keys, every bucket, in order). Buckets: count desc, then value asc.
    facets: dict[str, list[FacetBucket]] = {}


class SearchIndex(Protocol):
    @property
    def stages_writes(self) -> bool:
        """True when writes with ``commit=False`` wait for one ``commit_staged`` (Tantivy: a commit per
        batch costs segment flushes and merges); False when every write is durable as it returns."""
        ...

    async def ensure_index(self) -> None:
        """Create the live index (behind its alias) if it does not exist."""
        ...

    async def upsert(self, documents: Sequence[SearchDocument], *, commit: bool = True) -> int:
        """Write documents; one whose revision is not newer than the stored one is skipped.

        Returns how many were written. ``commit=False`` stages the write (see ``stages_writes``).
        """
        ...

    async def delete(self, items: Sequence[tuple[str, int]], *, commit: bool = True) -> int:
        """Delete (product_id, revision) pairs; a stale revision does not delete newer data."""
        ...

    async def set_stock_flags(self, items: Sequence[tuple[str, bool]], *, commit: bool = True) -> None:
        """Update the in-stock flag of existing documents (no revision: stock has its own read model)."""
        ...

    async def commit_staged(self) -> None:
        """Make every staged write durable and searchable (a no-op where nothing is staged)."""
        ...

    async def search(self, query: SearchQuery) -> SearchResult: ...

    async def suggest(self, prefix: str, limit: int = 10) -> list[str]:
        """Completions from titles, brands and categories; typo-tolerant."""
        ...

    async def correct(self, text: str) -> str | None:
        """ "Did you mean": ``text`` with each word the catalog does not know replaced by the likeliest
        catalog word near it (or split into two known words); None when no word changes."""
        ...

    async def get(self, product_ids: Sequence[str]) -> list[SearchDocument]: ...

    async def refresh(self) -> None:
        """Make all writes visible to search (tests and rebuilds)."""
        ...

    async def count(self) -> int: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class IndexRebuild(Protocol):
    """Zero-downtime rebuild: fill a fresh physical index, then swap the alias atomically."""

    async def begin_rebuild(self) -> SearchIndex:
        """A writable index that searches don't see yet."""
        ...

    async def finish_rebuild(self, new_index: SearchIndex) -> None:
        """Point the live alias at ``new_index`` atomically and drop the old one."""
        ...


class RebuildableSearchIndex(SearchIndex, IndexRebuild, Protocol):
    """What ``emporium.adapters.SEARCH_INDEX`` opens: both adapters implement both protocols."""
