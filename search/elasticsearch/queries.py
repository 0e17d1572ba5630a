"""A port query as the keyword arguments of ``AsyncElasticsearch.search``, and its facets back.

The text query has the Tantivy adapter's features (``search/tantivy/queries.py``): per query unit, the best
field's score (same boosts), or a typo match on the unstemmed ``.raw`` sub-fields (the words as typed;
``typo_edits`` edits, weighted as a one-edit typo; Lucene scales each fuzzy term by its similarity); units
add up, ``minimum_should_match`` of them required, a constant ``COORDINATION`` when all match, a title
phrase boost. The engine cannot tell a known word from a typo without a round trip, so a known word is
fuzzy-matched too, below its exact matches.

Pure functions, unit-testable without a server. Sorts are total orders (ties break on the
``product_id`` keyword: the noida-db emulator used in tests cannot sort on ``_id``).
"""

from __future__ import annotations

from typing import Any

from search.analysis import (
    COORDINATION,
    FIELD_BOOSTS,
    PHRASE_BOOST,
    PHRASE_SLOP,
    TYPO_WEIGHTS,
    minimum_should_match,
    query_units,
    query_words,
    typo_edits,
)
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

_FIELDS = {"title": "title", "brand": "brand.text", "description": "description", "category": "category_text"}
TEXT_FIELDS = [f"{name}^{FIELD_BOOSTS[key]:g}" for key, name in _FIELDS.items()]
RAW_FIELDS = [f"{name}.raw^{FIELD_BOOSTS[key]:g}" for key, name in _FIELDS.items()]
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


def _unit(unit: str) -> dict[str, Any]:
    exact: dict[str, Any] = {"multi_match": {"query": unit, "fields": TEXT_FIELDS, "type": "best_fields"}}
    if " " in unit:  # a synonym phrase: its words together
        exact["multi_match"]["operator"] = "and"
        return exact
    edits = typo_edits(unit)
    if edits == 0:
        return exact
    typo = {
        "multi_match": {
            "query": unit,
            "fields": RAW_FIELDS,
            "type": "best_fields",
            "fuzziness": edits,
            "prefix_length": 0,
            "fuzzy_transpositions": True,
            "boost": TYPO_WEIGHTS[1],
        }
    }
    return {"dis_max": {"queries": [exact, typo]}}


def _text_query(text: str) -> dict[str, Any] | None:
    units = query_units(text)
    if not units:
        return None
    clauses = [_unit(unit) for unit in units]
    should: list[dict[str, Any]] = []
    if len(clauses) > 1:
        every = {"bool": {"filter": clauses}}
        should.append({"constant_score": {"filter": every, "boost": COORDINATION}})
        phrase = " ".join(query_words(text))
        should.append(
            {"match_phrase": {"title": {"query": phrase, "slop": PHRASE_SLOP, "boost": PHRASE_BOOST}}}
        )
    match = {"bool": {"should": clauses, "minimum_should_match": minimum_should_match(len(clauses))}}
    if not should:
        return match
    return {"bool": {"must": [match], "should": should}}


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
