"""Facet counting over a known set of matches, without a second pass over the index.

Why: a relevance search already fetches its matches (up to ``FACET_FETCH`` of them, for about the price
of the first 64). Tantivy's aggregation would evaluate the query a second time and return every bucket
through JSON; counting the buckets of the fetched matches here is a few microseconds per match, provided
no document has to be loaded for it. So each product version's buckets are remembered by
``(pid_hash, revision)``: both are fast fields, a version's brand, category path and price never change
(stock-flag rewrites keep the revision and touch none of them), and a key read from the index names
the document it was read from, whichever process wrote it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import Any, cast

from search.port import DEFAULT_PRICE_RANGES, SearchDocument

BucketKeys = tuple[str, ...]  # "b<brand>", "c<level-tagged category term>", "p<price range key>"

_PRICE_BOUNDS = tuple(
    (
        None if r.low is None else float(r.low),
        None if r.high is None else float(r.high),
        "p" + r.key,
    )
    for r in DEFAULT_PRICE_RANGES
)


def price_bucket(price: float) -> str | None:
    for low, high, key in _PRICE_BOUNDS:
        if (low is None or price >= low) and (high is None or price < high):
            return key
    return None


class FacetTable:
    """``(pid_hash, revision) -> BucketKeys``, filled on first sight of a product version.

    Bounded: old versions are never looked up again, so when the table outgrows ``max_entries`` it is
    simply emptied and refills from the next searches.
    """

    def __init__(self, category_terms: Callable[[tuple[str, ...]], list[str]], max_entries: int = 1 << 18):
        self._category_terms = category_terms
        self.max_entries = max_entries
        self._keys: dict[tuple[int, int], BucketKeys] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def bucket_keys(self, doc: SearchDocument) -> BucketKeys:
        keys: list[str] = []
        if doc.brand:
            keys.append("b" + doc.brand)
        if doc.category_path:
            keys.extend("c" + term for term in self._category_terms(doc.category_path))
        price = price_bucket(float(doc.price))
        if price is not None:
            keys.append(price)
        return tuple(keys)

    def remember(self, key: int, revision: int, doc: SearchDocument) -> BucketKeys:
        if len(self._keys) >= self.max_entries:
            self._keys.clear()
        keys = self._keys[(key, revision)] = self.bucket_keys(doc)
        return keys

    def lookup(
        self, keys: Sequence[int], revisions: Sequence[int], load: Callable[[int], SearchDocument]
    ) -> list[BucketKeys]:
        """Bucket keys of the i-th match (``load(i)`` reads its document when not known yet)."""
        found = list(map(self._keys.get, zip(keys, revisions, strict=True)))
        for i, bucket_keys in enumerate(found):
            if bucket_keys is None:
                found[i] = self.remember(keys[i], revisions[i], load(i))
        return cast(list[BucketKeys], found)


def count_facets(matches: Iterable[BucketKeys]) -> dict[str, Any]:
    """What Tantivy's facet aggregation returns for exactly these matches: every brand, category term and
    price range that occurs, in its ``{"name": {"buckets": [{"key", "doc_count"}]}}`` shape."""
    counts = Counter(chain.from_iterable(matches))
    buckets: dict[str, list[dict[str, Any]]] = {"b": [], "c": [], "p": []}
    for key, n in counts.items():
        buckets[key[0]].append({"key": key[1:], "doc_count": n})
    return {
        "brand": {"buckets": buckets["b"]},
        "category": {"buckets": buckets["c"]},
        "price": {"buckets": buckets["p"]},
    }
