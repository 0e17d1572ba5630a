"""What the Tantivy adapter remembers per product version, to skip reading stored documents.

A version is ``(pid_hash, revision)``: both are fast fields, readable for a thousand hits in one call.
A version's content never changes: every catalog write carries a new revision, and the only write that
keeps the revision (``set_stock_flags``) changes nothing but ``in_stock``. So:

* ``FacetTable``: each version's facet buckets (brand, category levels, price range). A relevance search
  already fetches its matches (up to ``FACET_FETCH``, for about the price of the first 64); counting their
  buckets here costs a few microseconds per match, where Tantivy's aggregation would evaluate the query a
  second time and return every bucket through JSON.
* ``DocumentMemo``: decoded documents of hits of in-stock-only searches. Every hit of such a search is in
  stock in the index, so the remembered document is exact once ``in_stock`` is true; loading and decoding
  a stored document costs ~6 us, about a fifth of a first page's Python time.

Both are bounded: old versions are never looked up again, so a full memo simply starts over.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import Any, Generic, TypeVar, cast

import msgspec

from search.port import DEFAULT_PRICE_RANGES, SearchDocument

BucketKeys = tuple[str, ...]  # "b<brand>", "c<level-tagged category term>", "p<price range key>"
Version = tuple[int, int]  # (pid_hash, revision)
_V = TypeVar("_V")

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


class _VersionMemo(Generic[_V]):
    """``Version -> value``, computed on first sight from the version's document."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._values: dict[Version, _V] = {}

    def __len__(self) -> int:
        return len(self._values)

    def value_of(self, doc: SearchDocument) -> _V:
        raise NotImplementedError

    def remember(self, key: int, revision: int, doc: SearchDocument) -> _V:
        if len(self._values) >= self.max_entries:
            self._values.clear()
        value = self._values[(key, revision)] = self.value_of(doc)
        return value

    def lookup(
        self, keys: Sequence[int], revisions: Sequence[int], load: Callable[[int], SearchDocument]
    ) -> list[_V]:
        """The value of the i-th version (``load(i)`` reads its document when not known yet)."""
        found = list(map(self._values.get, zip(keys, revisions, strict=True)))
        for i, value in enumerate(found):
            if value is None:
                found[i] = self.remember(keys[i], revisions[i], load(i))
        return cast(list[_V], found)


class FacetTable(_VersionMemo[BucketKeys]):
    def __init__(self, category_terms: Callable[[tuple[str, ...]], list[str]], max_entries: int = 1 << 18):
        super().__init__(max_entries)
        self._category_terms = category_terms

    def value_of(self, doc: SearchDocument) -> BucketKeys:
        keys: list[str] = []
        if doc.brand:
            keys.append("b" + doc.brand)
        if doc.category_path:
            keys.extend("c" + term for term in self._category_terms(doc.category_path))
        price = price_bucket(float(doc.price))
        if price is not None:
            keys.append(price)
        return tuple(keys)


class DocumentMemo(_VersionMemo[SearchDocument]):
    """Documents as an in-stock-only search returns them (``in_stock`` true)."""

    def __init__(self, max_entries: int = 1 << 14) -> None:
        super().__init__(max_entries)

    def value_of(self, doc: SearchDocument) -> SearchDocument:
        return doc if doc.in_stock else msgspec.structs.replace(doc, in_stock=True)


def count_facets(matches: Iterable[BucketKeys]) -> dict[str, Any]:
    """What Tantivy's facet aggregation returns for exactly these matches: every brand, category term and
    price range that occurs, in its ``{"name": {"buckets": [{"key", "doc_count"}]}}`` shape."""
    counts = Counter(chain.from_iterable(matches))
    buckets: dict[str, list[dict[str, Any]]] = {"b": [], "c": [], "p": []}
    for key, n in counts.items():
        buckets[key[0]].append({"key": key[1:], "doc_count": n})
    return {name: {"buckets": buckets[name[0]]} for name in ("brand", "category", "price")}
