"""Facets: brand, category (the level below the category filter) and price ranges, exact counts.

They come from Tantivy aggregations over the fast fields, or, when a relevance search's fetch already
holds every match (at most ``FACET_FETCH``), are counted over those matches (the same counts, without
evaluating the query a second time).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import tantivy

from search.port import DEFAULT_PRICE_RANGES, MAX_CATEGORY_DEPTH, FacetBucket, SearchDocument, SearchQuery
from search.tantivy.documents import category_fields, load
from search.tantivy.paging import MIN_FETCH
from search.tantivy.queries import category_depth
from search.tantivy.schema import category_term

# A relevance search fetches at least this many hits; when that is every match, the facets are counted
# over their documents (each read once, then reused by the page). Counting reads every matched document,
# so past a few dozen matches the aggregation is the cheaper way.
FACET_FETCH = MIN_FETCH
EVERY_TERM = 1 << 20  # every term from every segment: counts are exact, not estimates
# Every category level is aggregated and ``facets`` keeps the wanted one: catalogs have far fewer
# paths than this, and a regex ``include`` per level costs more than the extra buckets.
CATEGORY_BUCKETS = 1 << 16

DocumentKey = tuple[int, int]  # (segment, doc) of a DocAddress: documents already loaded by a search


def document_key(address: Any) -> DocumentKey:
    return (address.segment_ord, address.doc)


def facet_level(query: SearchQuery) -> int:
    return min(category_depth(query) + 1, MAX_CATEGORY_DEPTH)


def aggregations(query: SearchQuery) -> dict[str, Any]:
    """The facet aggregations of a query (Tantivy's Elasticsearch-like aggregation request)."""
    ranges = []
    for bucket in DEFAULT_PRICE_RANGES:
        spec: dict[str, Any] = {"key": bucket.key}
        if bucket.low is not None:
            spec["from"] = float(bucket.low)
        if bucket.high is not None:
            spec["to"] = float(bucket.high)
        ranges.append(spec)
    return {
        "brand": {"terms": {"field": "brand", "size": max(1, query.facet_size), "segment_size": EVERY_TERM}},
        "category": {"terms": {"field": "category", "size": CATEGORY_BUCKETS, "segment_size": EVERY_TERM}},
        "price": {"range": {"field": "price", "ranges": ranges}},
    }


def _price_range(price: float) -> str | None:
    for bucket in DEFAULT_PRICE_RANGES:
        if (bucket.low is None or price >= float(bucket.low)) and (
            bucket.high is None or price < float(bucket.high)
        ):
            return bucket.key
    return None


def counted(
    searcher: tantivy.Searcher, matches: list[Any], loaded: dict[DocumentKey, SearchDocument]
) -> dict[str, Any]:
    """What the facet aggregations return, counted over the documents at these addresses (every match
    of a query); the documents go to ``loaded``, so a page's hits are not read twice."""
    counts: dict[str, Counter[str]] = {"brand": Counter(), "category": Counter(), "price": Counter()}
    for address in matches:
        doc = load(searcher, address)
        loaded[document_key(address)] = doc
        if doc.brand:
            counts["brand"][doc.brand] += 1
        if doc.category_path:
            counts["category"].update(category_fields(doc.category_path).terms)
        price = _price_range(float(doc.price))
        if price is not None:
            counts["price"][price] += 1
    return {
        name: {"buckets": [{"key": key, "doc_count": n} for key, n in counter.items()]}
        for name, counter in counts.items()
    }


def facets(result: dict[str, Any], query: SearchQuery) -> dict[str, list[FacetBucket]]:
    """The port's facets from an aggregation result."""
    found: dict[str, list[FacetBucket]] = {}
    level = category_term(facet_level(query), "")
    categories = [
        FacetBucket(str(b["key"])[len(level) :], int(b["doc_count"]))
        for b in result["category"]["buckets"]
        if str(b["key"]).startswith(level)
    ]
    brands = [FacetBucket(str(b["key"]), int(b["doc_count"])) for b in result["brand"]["buckets"]]
    for name, buckets in (("category", categories), ("brand", brands)):
        buckets.sort(key=lambda b: (-b.count, b.value))
        found[name] = buckets[: max(1, query.facet_size)]
    by_key = {str(b["key"]): int(b["doc_count"]) for b in result["price"]["buckets"]}
    found["price"] = [FacetBucket(r.key, by_key.get(r.key, 0)) for r in DEFAULT_PRICE_RANGES]
    return found
