"""A tiny in-memory SearchIndex for unit tests of the projector and the search service (pure logic).

It passes the search-index contract suite (tests/contract/test_search_index.py) except the cases marked
for real engines: text matches by substring with the repository's synonyms, with no typo tolerance.
Revisions, filters, facets, sorts, paging and rebuilds follow search/port.py like the real adapters.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from typing import NamedTuple

import msgspec

from search.analysis import category_prefixes, default_synonyms, merge_suggestions, query_words
from search.out_of_stock import OutOfStockSet, StockChange
from search.port import (
    DEFAULT_PRICE_RANGES,
    MAX_CATEGORY_DEPTH,
    MAX_RESULT_WINDOW,
    FacetBucket,
    Hit,
    InvalidQuery,
    SearchDocument,
    SearchQuery,
    SearchResult,
    Sort,
    category_key,
)

SortKey = tuple[float, str]  # (primary value in ascending order, product_id): a hit's sort_values
EXACT_TITLE_BOOST = 100.0
PHRASE_BOOST = 10.0


class _Ranked(NamedTuple):
    key: SortKey
    doc: SearchDocument


def _folded(text: str) -> str:
    return " ".join(query_words(text, max_words=1_000))


def _units(text: str) -> list[list[str]]:
    """Each query word with its synonyms (the alternatives that match it)."""
    synonyms = default_synonyms()
    return [[word, *synonyms.get(word, ())] for word in query_words(text)]


def _mark(text: str, terms: set[str]) -> str | None:
    """``text`` HTML-escaped with the terms in <em>, or None when no term occurs."""
    escaped = html.escape(text)
    if not terms:
        return None
    pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.IGNORECASE)
    marked = pattern.sub(lambda m: f"<em>{m.group(0)}</em>", escaped)
    return marked if marked != escaped else None


class MemorySearchIndex:
    stages_writes = False

    def __init__(self) -> None:
        self.docs: dict[str, SearchDocument] = {}
        self.tombstones: dict[str, int] = {}  # product_id -> revision of its delete
        self.refreshes = 0
        self.searches = 0
        self.fail_next_upsert = False

    # -- lifecycle --------------------------------------------------------------------------------

    async def ensure_index(self) -> None: ...

    async def commit_staged(self) -> None: ...

    async def refresh(self) -> None:
        self.refreshes += 1

    async def count(self) -> int:
        return len(self.docs)

    async def ping(self) -> None: ...

    async def close(self) -> None: ...

    async def begin_rebuild(self) -> MemorySearchIndex:
        return MemorySearchIndex()

    async def finish_rebuild(self, new_index: MemorySearchIndex) -> None:
        self.docs, self.tombstones = new_index.docs, new_index.tombstones

    # -- writes -----------------------------------------------------------------------------------

    def _revision(self, product_id: str) -> int:
        current = self.docs.get(product_id)
        return current.revision if current else self.tombstones.get(product_id, -1)

    async def upsert(self, documents: Sequence[SearchDocument], *, commit: bool = True) -> int:
        if self.fail_next_upsert:
            self.fail_next_upsert = False
            raise ConnectionError("index down")
        newest: dict[str, SearchDocument] = {}
        for doc in documents:  # a batch may repeat a product: only its newest revision can win
            seen = newest.get(doc.product_id)
            if doc.revision > max(self._revision(doc.product_id), seen.revision if seen else -1):
                newest[doc.product_id] = doc
        for doc in newest.values():
            self.docs[doc.product_id] = doc
            self.tombstones.pop(doc.product_id, None)
        return len(newest)

    async def delete(self, items: Sequence[tuple[str, int]], *, commit: bool = True) -> int:
        newest: dict[str, int] = {}
        for product_id, revision in items:
            if revision > max(self._revision(product_id), newest.get(product_id, -1)):
                newest[product_id] = revision
        for product_id, revision in newest.items():  # a tombstone: an older upsert arriving later loses
            self.docs.pop(product_id, None)
            self.tombstones[product_id] = revision
        return len(newest)

    async def set_stock_flags(self, items: Sequence[tuple[str, bool]], *, commit: bool = True) -> None:
        for product_id, in_stock in items:
            doc = self.docs.get(product_id)
            if doc is not None:
                self.docs[product_id] = msgspec.structs.replace(doc, in_stock=in_stock)

    # -- reads ------------------------------------------------------------------------------------

    async def get(self, product_ids: Sequence[str]) -> list[SearchDocument]:
        return [self.docs[p] for p in dict.fromkeys(product_ids) if p in self.docs]

    async def search(self, query: SearchQuery) -> SearchResult:
        self.searches += 1
        _validate(query)
        units = _units(query.text)
        matched = [d for d in self.docs.values() if _matches(d, query, units)]
        ranked = sorted((_Ranked(_sort_key(d, query, units), d) for d in matched), key=lambda r: r.key)
        if query.search_after is not None:
            value, product_id = query.search_after
            ranked = [r for r in ranked if r.key > (float(value), str(product_id))]
        else:
            ranked = ranked[query.offset :]
        hits = [_hit(r, query, units) for r in ranked[: query.limit]]
        facets = _facets(matched, query) if query.with_facets else {}
        return SearchResult(hits=hits, total=len(matched), facets=facets)

    async def correct(self, text: str) -> str | None:
        return None  # no typo model (see the module docstring)

    async def suggest(self, prefix: str, limit: int = 10) -> list[str]:
        typed = " ".join(query_words(prefix))
        if not typed or limit <= 0:
            return []
        by_popularity = sorted(self.docs.values(), key=lambda d: (-d.popularity, d.product_id))
        brands = dict.fromkeys(d.brand for d in by_popularity if _folded(d.brand).startswith(typed))
        names = (name for d in by_popularity for name in d.category_path)
        categories = dict.fromkeys(name.strip() for name in names if _folded(name).startswith(typed))
        titles = [d.title for d in by_popularity if f" {typed}" in f" {_folded(d.title)}"]
        titles.sort(key=lambda title: not _folded(title).startswith(typed))  # stable: popularity within
        return merge_suggestions(list(brands), list(categories), titles, limit)


def _validate(query: SearchQuery) -> None:
    if query.limit < 0 or query.offset < 0:
        raise InvalidQuery("limit and offset must not be negative")
    if query.search_after is None and query.offset + query.limit > MAX_RESULT_WINDOW:
        raise InvalidQuery(f"offset + limit must be at most {MAX_RESULT_WINDOW}")
    after = query.search_after
    if after is not None and (len(after) != 2 or isinstance(after[0], str) or not isinstance(after[1], str)):
        raise InvalidQuery("search_after must be the sort_values of a hit from the same sort")


def _text(doc: SearchDocument) -> str:
    return _folded(" ".join((doc.title, doc.brand, doc.description, *doc.category_path)))


def _matches(doc: SearchDocument, q: SearchQuery, units: list[list[str]]) -> bool:
    if units:
        text = _text(doc)
        if not all(any(alternative in text for alternative in unit) for unit in units):
            return False
    if q.category and category_key(q.category) not in category_prefixes(doc.category_path):
        return False
    if q.brands and doc.brand not in q.brands:
        return False
    if q.price_min is not None and doc.price < q.price_min:
        return False
    if q.price_max is not None and doc.price > q.price_max:
        return False
    if q.rating_min is not None and (doc.rating is None or doc.rating < q.rating_min):
        return False
    if q.in_stock_only and not doc.in_stock:
        return False
    if q.warehouses is not None and not set(doc.warehouses) & set(q.warehouses):
        return False
    return doc.product_id not in q.exclude_ids


def _score(doc: SearchDocument, text: str, units: list[list[str]]) -> float:
    """Units found in the title count most; the whole query in the title, or as the title, more."""
    title, typed = _folded(doc.title), _folded(text)
    score = sum(3.0 if any(a in title for a in unit) else 1.0 for unit in units)
    if typed and typed in title:
        score += EXACT_TITLE_BOOST if typed == title else PHRASE_BOOST
    return score


def _sort_key(doc: SearchDocument, q: SearchQuery, units: list[list[str]]) -> SortKey:
    if q.sort is Sort.RELEVANCE:
        primary = -_score(doc, q.text, units) if units else -doc.popularity
    elif q.sort is Sort.PRICE_ASC:
        primary = float(doc.price)
    elif q.sort is Sort.PRICE_DESC:
        primary = -float(doc.price)
    elif q.sort is Sort.RATING:
        primary = -(-1.0 if doc.rating is None else doc.rating)
    else:
        primary = -float(doc.created_at_ms)
    return (primary, doc.product_id)


def _hit(ranked: _Ranked, q: SearchQuery, units: list[list[str]]) -> Hit:
    doc = ranked.doc
    highlights: dict[str, list[str]] = {}
    if q.with_highlights and units:
        terms = {alternative for unit in units for alternative in unit}
        for field in ("title", "description"):
            marked = _mark(getattr(doc, field), terms)
            if marked is not None:
                highlights[field] = [marked]
    score = _score(doc, q.text, units) if units else 0.0
    return Hit(document=doc, score=score, sort_values=ranked.key, highlights=highlights)


def _price_range(price: Decimal) -> str | None:
    for r in DEFAULT_PRICE_RANGES:
        if (r.low is None or price >= r.low) and (r.high is None or price < r.high):
            return r.key
    return None


def _facets(matched: list[SearchDocument], q: SearchQuery) -> dict[str, list[FacetBucket]]:
    """Brands, the category level below the filter, and every price range, counted over the matches."""
    level = min(len([p for p in q.category if p.strip()]) + 1, MAX_CATEGORY_DEPTH)
    brands = Counter(d.brand for d in matched if d.brand)
    paths = (category_prefixes(d.category_path) for d in matched)
    categories = Counter(prefixes[level - 1] for prefixes in paths if len(prefixes) >= level)
    prices = Counter(_price_range(d.price) for d in matched)

    def top(counts: Counter[str]) -> list[FacetBucket]:
        buckets = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return [FacetBucket(value, count) for value, count in buckets[: max(1, q.facet_size)]]

    return {
        "category": top(categories),
        "brand": top(brands),
        "price": [FacetBucket(r.key, prices.get(r.key, 0)) for r in DEFAULT_PRICE_RANGES],
    }


def doc(n: int, **changes: object) -> SearchDocument:
    base = SearchDocument(
        product_id=f"s1:{n:04d}",
        revision=1,
        supplier_id="s1",
        sku=f"SKU-{n:04d}",
        title=f"Organic tea blend {n}",
        brand="Tetley" if n % 2 else "Lipton",
        category_path=("Grocery", "Beverages", "Tea"),
        price=Decimal(10 + n),
        rating=float(n % 5),
        warehouses=("WH-NORTH",) if n % 3 else ("WH-SOUTH",),
        created_at_ms=n,
    )
    return msgspec.structs.replace(base, **changes)


async def in_stock(stock: OutOfStockSet, documents: Sequence[SearchDocument]) -> None:
    """What inventory's first stock events say of these documents' SKUs: in stock (revision 0, so any
    later event of a test wins). Without a stock event, an item is out of stock."""
    await stock.apply([StockChange(d.sku, True, 0) for d in documents])
