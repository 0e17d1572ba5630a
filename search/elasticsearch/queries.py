"""A port query as the keyword arguments of ``AsyncElasticsearch.search``, and its facets back.

Pure functions, unit-testable without a server. Sorts are total orders (ties break on the
``product_id`` keyword: the noida-db emulator used in tests cannot sort on ``_id``).
"""

from __future__ import annotations

from typing import Any

from search.analysis import MINIMUM_SHOULD_MATCH, auto_fuzziness, query_words
from search.elasticsearch.mapping import SOURCE_EXCLUDES
from search.port import (
    DEFAULT_PRICE_RANGES,
    MAX_CATEGORY_DEPTH,
    MAX_RESULT_WINDOW,
    FacetBucket,
    InvalidQuery,
    SearchQuery,
    Sort,
    category_key,
)

TEXT_FIELDS = ["title^3", "brand.text^2", "description", "category_text"]
PHRASE_BOOST = 2.0
LIVE = {"term": {"live": True}}


def _validate(query: SearchQuery) -> None:
    if query.limit < 0 or query.offset < 0:
        raise InvalidQuery("limit and offset must not be negative")
    if query.search_after is None and query.offset + query.limit > MAX_RESULT_WINDOW:
        raise InvalidQuery(
            f"offset + limit must be at most {MAX_RESULT_WINDOW}; page deeper with search_after"
        )
    if query.search_after is not None:
        after = query.search_after
        size = 3 if by_score(query) else 2
        if (
            len(after) != size
            or isinstance(after[0], (str, bool))
            or not isinstance(after[1], str)
            or (size == 3 and (not isinstance(after[2], int) or isinstance(after[2], bool) or after[2] < 0))
        ):
            raise InvalidQuery("search_after must be the sort_values of a hit from the same sort")
        if size == 3 and int(after[2]) + 1 + query.limit > MAX_RESULT_WINDOW:
            raise InvalidQuery(f"relevance results are paged up to {MAX_RESULT_WINDOW}; refine the query")


def by_score(query: SearchQuery) -> bool:
    return query.sort is Sort.RELEVANCE and bool(query_words(query.text))


def relevance_offset(query: SearchQuery) -> int:
    """Relevance pages continue by position: score-based search_after is not portable (the
    noida-db emulator never advances past equal scores), and relevance pages rarely go deep."""
    if query.search_after is not None:
        return int(query.search_after[2]) + 1
    return query.offset


def _sort(query: SearchQuery) -> list[Any]:
    tiebreak = {"product_id": "asc"}
    if query.sort is Sort.PRICE_ASC:
        return [{"price": "asc"}, tiebreak]
    if query.sort is Sort.PRICE_DESC:
        return [{"price": "desc"}, tiebreak]
    if query.sort is Sort.RATING:
        return [{"rating_sort": "desc"}, tiebreak]
    if query.sort is Sort.NEWEST:
        return [{"created_at_ms": "desc"}, tiebreak]
    if query_words(query.text):
        return ["_score", tiebreak]
    return [{"popularity": "desc"}, tiebreak]


def _filters(query: SearchQuery) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    must: list[dict[str, Any]] = [LIVE]
    must_not: list[dict[str, Any]] = []
    if query.category:
        must.append({"term": {"category_path": category_key(query.category)}})
    if query.brands:
        must.append({"terms": {"brand": list(query.brands)}})
    if query.price_min is not None or query.price_max is not None:
        bounds: dict[str, float] = {}
        if query.price_min is not None:
            bounds["gte"] = float(query.price_min)
        if query.price_max is not None:
            bounds["lte"] = float(query.price_max)
        must.append({"range": {"price": bounds}})
    if query.rating_min is not None:
        must.append({"range": {"rating": {"gte": float(query.rating_min)}}})
    if query.in_stock_only:
        must.append({"term": {"in_stock": True}})
    if query.warehouses is not None:
        must.append({"terms": {"warehouses": list(query.warehouses)}})
    if query.exclude_ids:
        must_not.append({"terms": {"product_id": list(query.exclude_ids)}})
    return must, must_not


def _text_query(text: str) -> dict[str, Any] | None:
    words = query_words(text)
    if not words:
        return None
    cleaned = " ".join(words)
    match: dict[str, Any] = {
        "multi_match": {
            "query": cleaned,
            "fields": TEXT_FIELDS,
            "type": "best_fields",
            "fuzziness": "AUTO" if any(auto_fuzziness(w) for w in words) else 0,
            "minimum_should_match": MINIMUM_SHOULD_MATCH,
        }
    }
    if len(words) == 1:
        return match
    phrase = {"match_phrase": {"title": {"query": cleaned, "slop": 1, "boost": PHRASE_BOOST}}}
    return {"bool": {"must": [match], "should": [phrase]}}


def _facet_level(query: SearchQuery) -> int:
    return min(len([p for p in query.category if p.strip()]) + 1, MAX_CATEGORY_DEPTH)


HIGHLIGHT: dict[str, Any] = {
    "pre_tags": ["<em>"],
    "post_tags": ["</em>"],
    "encoder": "html",
    "fields": {
        "title": {"number_of_fragments": 0},
        "description": {"fragment_size": 150, "number_of_fragments": 1},
    },
}


def _aggregations(query: SearchQuery) -> dict[str, Any]:
    size = max(1, query.facet_size)
    ranges = []
    for bucket in DEFAULT_PRICE_RANGES:
        spec: dict[str, Any] = {"key": bucket.key}
        if bucket.low is not None:
            spec["from"] = float(bucket.low)
        if bucket.high is not None:
            spec["to"] = float(bucket.high)
        ranges.append(spec)
    return {
        "brand": {"terms": {"field": "brand", "size": size}},
        "category": {"terms": {"field": f"cat_lvl_{_facet_level(query)}", "size": size}},
        "price": {"range": {"field": "price", "ranges": ranges}},
    }


def build_search_body(query: SearchQuery) -> dict[str, Any]:
    """The keyword arguments of ``AsyncElasticsearch.search`` for a port query (pure; unit-tested)."""
    _validate(query)
    must, must_not = _filters(query)
    text = _text_query(query.text)
    bool_query: dict[str, Any] = {"filter": must}
    if text is not None:
        bool_query["must"] = [text]
    if must_not:
        bool_query["must_not"] = must_not
    body: dict[str, Any] = {
        "query": {"bool": bool_query},
        "sort": _sort(query),
        "size": query.limit,
        "track_total_hits": True,
        "source_excludes": SOURCE_EXCLUDES,
    }
    if by_score(query):
        if relevance_offset(query):
            body["from_"] = relevance_offset(query)
    elif query.search_after is not None:
        body["search_after"] = list(query.search_after)
    elif query.offset:
        body["from_"] = query.offset
    if query.with_facets:
        body["aggs"] = _aggregations(query)
    if query.with_highlights and text is not None:
        body["highlight"] = HIGHLIGHT
    return body


def facets_from(aggs: dict[str, Any], query: SearchQuery) -> dict[str, list[FacetBucket]]:
    facets: dict[str, list[FacetBucket]] = {}
    for name in ("category", "brand"):
        buckets = [
            FacetBucket(str(b["key"]), int(b["doc_count"])) for b in (aggs.get(name) or {}).get("buckets", [])
        ]
        buckets.sort(key=lambda b: (-b.count, b.value))
        facets[name] = buckets
    price = (aggs.get("price") or {}).get("buckets", [])
    by_key = {str(b.get("key")): int(b["doc_count"]) for b in price}
    facets["price"] = [FacetBucket(r.key, by_key.get(r.key, 0)) for r in DEFAULT_PRICE_RANGES]
    return facets
