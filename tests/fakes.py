"""A tiny in-memory SearchIndex for unit tests of the projector and the search service (pure logic).

Not an adapter: exact-substring matching only, but the same revision, paging and sort_values contract as
search/port.py, which is what the code under test relies on. Real engines are covered by the contract suite
and the integration tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import msgspec

from search.port import (
    DEFAULT_PRICE_RANGES,
    FacetBucket,
    Hit,
    SearchDocument,
    SearchQuery,
    SearchResult,
    Sort,
)


class MemorySearchIndex:
    stages_writes = False

    def __init__(self) -> None:
        self.docs: dict[str, SearchDocument] = {}
        self.tombstones: dict[str, int] = {}
        self.refreshes = 0
        self.searches = 0
        self.fail_next_upsert = False

    async def ensure_index(self) -> None: ...

    async def commit_staged(self) -> None: ...

    async def upsert(self, documents: Sequence[SearchDocument], *, commit: bool = True) -> int:
        if self.fail_next_upsert:
            self.fail_next_upsert = False
            raise ConnectionError("index down")
        written = 0
        for doc in documents:
            current = self.docs.get(doc.product_id)
            stored = current.revision if current else self.tombstones.get(doc.product_id, -1)
            if doc.revision > stored:
                self.docs[doc.product_id] = doc
                written += 1
        return written

    async def delete(self, items: Sequence[tuple[str, int]], *, commit: bool = True) -> int:
        deleted = 0
        for product_id, revision in items:
            current = self.docs.get(product_id)
            if current is not None and current.revision < revision:
                del self.docs[product_id]
                self.tombstones[product_id] = revision
                deleted += 1
        return deleted

    async def set_stock_flags(self, items: Sequence[tuple[str, bool]], *, commit: bool = True) -> None:
        for product_id, in_stock in items:
            doc = self.docs.get(product_id)
            if doc is not None:
                self.docs[product_id] = msgspec.structs.replace(doc, in_stock=in_stock)

    def _matches(self, doc: SearchDocument, q: SearchQuery) -> bool:
        if q.text and not all(t in doc.title.lower() for t in q.text.lower().split()):
            return False
        if q.category and tuple(doc.category_path[: len(q.category)]) != q.category:
            return False
        if q.brands and doc.brand not in q.brands:
            return False
        if q.price_min is not None and doc.price < q.price_min:
            return False
        if q.price_max is not None and doc.price > q.price_max:
            return False
        if q.rating_min is not None and (doc.rating or 0) < q.rating_min:
            return False
        if q.in_stock_only and not doc.in_stock:
            return False
        if q.warehouses is not None and not set(doc.warehouses) & set(q.warehouses):
            return False
        return doc.product_id not in q.exclude_ids

    @staticmethod
    def _key(doc: SearchDocument, q: SearchQuery) -> tuple[float | int | str, ...]:
        score = float(sum(doc.title.lower().count(t) for t in q.text.lower().split())) if q.text else 0.0
        primary: float = {
            Sort.RELEVANCE: -score,
            Sort.PRICE_ASC: float(doc.price),
            Sort.PRICE_DESC: -float(doc.price),
            Sort.RATING: -(doc.rating or 0.0),
            Sort.NEWEST: -float(doc.created_at_ms),
        }[q.sort]
        return (primary, doc.product_id)

    async def search(self, query: SearchQuery) -> SearchResult:
        self.searches += 1
        matched = sorted(
            ((self._key(d, query), d) for d in self.docs.values() if self._matches(d, query)),
            key=lambda kd: kd[0],
        )
        window = matched
        if query.search_after is not None:
            after = tuple(query.search_after)
            window = [kd for kd in matched if kd[0] > after]
        else:
            window = matched[query.offset :]
        hits = [
            Hit(document=d, score=-float(k[0]) if query.sort == Sort.RELEVANCE else 1.0, sort_values=k)
            for k, d in window[: query.limit]
        ]
        facets: dict[str, list[FacetBucket]] = {}
        if query.with_facets:
            brands: dict[str, int] = {}
            for _, d in matched:
                brands[d.brand] = brands.get(d.brand, 0) + 1
            facets["brand"] = [
                FacetBucket(b, c) for b, c in sorted(brands.items(), key=lambda x: (-x[1], x[0]))
            ]
            facets["price"] = [
                FacetBucket(
                    r.key,
                    sum(
                        1
                        for _, d in matched
                        if (r.low is None or d.price >= r.low) and (r.high is None or d.price < r.high)
                    ),
                )
                for r in DEFAULT_PRICE_RANGES
            ]
        return SearchResult(hits=hits, total=len(matched), facets=facets)

    async def suggest(self, prefix: str, limit: int = 10) -> list[str]:
        titles = sorted({d.title for d in self.docs.values() if d.title.lower().startswith(prefix.lower())})
        return titles[:limit]

    async def get(self, product_ids: Sequence[str]) -> list[SearchDocument]:
        return [self.docs[p] for p in product_ids if p in self.docs]

    async def refresh(self) -> None:
        self.refreshes += 1

    async def count(self) -> int:
        return len(self.docs)

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


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
