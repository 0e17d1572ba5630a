"""Pages of hits in exact total orders, by offset or after a cursor (``search_after``).

Relevance ties and field ties break on the 64-bit product hash, and ``search_after`` becomes a range
filter on (sort field, hash), so paging never repeats or skips.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any, NamedTuple, cast

import tantivy

from search.port import SearchDocument, SearchQuery, Sort
from search.tantivy.schema import SCHEMA

MIN_FETCH = 64  # the smallest fetch of a relevance page


class SortField(NamedTuple):
    field: str  # a fast field
    descending: bool


FIELD_SORTS: dict[Sort, SortField] = {
    Sort.PRICE_ASC: SortField("price", False),
    Sort.PRICE_DESC: SortField("price", True),
    Sort.RATING: SortField("rating_sort", True),
    Sort.NEWEST: SortField("created_at_ms", True),
}
POPULARITY = SortField("popularity", True)  # "relevance" without text: most popular first


class Ranked(NamedTuple):
    """A hit placed on a page."""

    score: float
    key: int  # pid_hash
    address: Any  # tantivy.DocAddress


class RelevancePage(NamedTuple):
    hits: list[Ranked]
    total: int
    every: list[Any] | None  # the addresses of every match, when asked for and the fetch held them all


def count(result: tantivy.SearchResult) -> int:
    return int(getattr(result, "count", 0) or 0)


def _score_search(searcher: tantivy.Searcher, base: tantivy.Query, fetch: int) -> tantivy.SearchResult:
    return searcher.search(base, limit=fetch, count=True, weight_by_field="tiebreak")


def _order(hit: Ranked) -> tuple[float, int]:
    """The relevance order as an ascending sort key: score desc, then product hash asc."""
    return (-hit.score, hit.key)


def _settled_end(scores: list[float], wanted: int) -> int:
    """How many of the fetched hits (in score order) must be ordered to know the first ``wanted``: the
    hits tied with the last wanted one may order before it."""
    end = min(wanted, len(scores))
    if 0 < end < len(scores):
        boundary = scores[end - 1]
        while end < len(scores) and scores[end] == boundary:
            end += 1
    return end


def relevance_page(
    searcher: tantivy.Searcher, base: tantivy.Query, query: SearchQuery, every_up_to: int = 0
) -> RelevancePage:
    """Top hits by (score desc, hash asc), fetching deeper until the page is certain; with
    ``every_up_to``, also every match when there are at most that many.

    Tantivy returns hits by score, ordering equal scores arbitrarily; a hit is placed for sure only when
    its score is above the lowest score fetched (or everything was fetched), so the fetch grows until the
    page is all sure. Only the page and the hits tied with its last one are ordered here.
    """
    if query.search_after is not None:
        return _relevance_page_after(searcher, base, query)
    wanted = query.offset + query.limit
    fetch = max(MIN_FETCH, wanted * 2, every_up_to)
    while True:
        result = _score_search(searcher, base, fetch)
        scores = [float(score) for score, _ in result.hits]
        addresses = [address for _, address in result.hits]
        complete = len(addresses) < fetch
        end = _settled_end(scores, wanted)
        if complete or end < len(addresses):
            keys = cast(list[int], searcher.fast_field_values("pid_hash", addresses[:end]))
            ranked = sorted(map(Ranked, scores, keys, addresses), key=_order)
            every = addresses if complete and every_up_to else None
            return RelevancePage(ranked[query.offset : wanted], count(result), every)
        fetch *= 4


def _relevance_page_after(
    searcher: tantivy.Searcher, base: tantivy.Query, query: SearchQuery
) -> RelevancePage:
    """``relevance_page`` after a cursor: the page starts after the hit the cursor names."""
    assert query.search_after is not None
    score, key = query.search_after
    after = _order(Ranked(float(score), int(key), None))
    fetch = max(MIN_FETCH, query.limit * 2)
    while True:
        result = _score_search(searcher, base, fetch)
        scores = [float(score) for score, _ in result.hits]
        addresses = [address for _, address in result.hits]
        keys = searcher.fast_field_values("pid_hash", addresses)
        ranked = sorted(map(Ranked, scores, [int(k or 0) for k in keys], addresses), key=_order)
        complete = len(addresses) < fetch
        # sure: placed above every hit not fetched yet (those score at most the lowest fetched)
        sure = len(ranked) if complete else sum(1 for hit in ranked if hit.score > scores[-1])
        start = bisect_right([_order(hit) for hit in ranked], after)
        if complete or start + query.limit <= sure:
            return RelevancePage(ranked[start : start + query.limit], count(result), None)
        fetch *= 4


def _range(field: str, kind: tantivy.FieldType, value: Any, *, above: bool, inclusive: bool) -> tantivy.Query:
    if above:
        return tantivy.Query.range_query(SCHEMA, field, kind, lower_bound=value, include_lower=inclusive)
    return tantivy.Query.range_query(SCHEMA, field, kind, upper_bound=value, include_upper=inclusive)


def after_filter(sort: SortField, query: SearchQuery) -> tantivy.Query:
    """Documents strictly after (value, hash) in the order (field asc|desc, pid_hash asc)."""
    assert query.search_after is not None
    value, key = query.search_after
    field = sort.field
    kind = tantivy.FieldType.Integer if field == "created_at_ms" else tantivy.FieldType.Float
    value = int(value) if kind is tantivy.FieldType.Integer else float(value)
    beyond = _range(field, kind, value, above=not sort.descending, inclusive=False)
    same = tantivy.Query.range_query(SCHEMA, field, kind, lower_bound=value, upper_bound=value)
    later = _range("pid_hash", tantivy.FieldType.Integer, int(key), above=True, inclusive=False)
    tie = tantivy.Query.boolean_query([(tantivy.Occur.Must, same), (tantivy.Occur.Must, later)])
    return tantivy.Query.boolean_query([(tantivy.Occur.Should, beyond), (tantivy.Occur.Should, tie)])


def top_hits(sort: SortField, size: int) -> dict[str, Any]:
    """The aggregation that pages a field sort: the top ``size`` by (field, pid_hash asc)."""
    return {
        "top_hits": {
            "size": size,
            "from": 0,  # "from" is applied by the caller: Tantivy's top_hits panics past the last hit
            "sort": [{sort.field: "desc" if sort.descending else "asc"}, {"pid_hash": "asc"}],
            "docvalue_fields": ["pid_hash"],
        }
    }


def top_hit_keys(result: dict[str, Any], skip: int) -> list[int]:
    return [int(h["docvalue_fields"]["pid_hash"][0]) for h in result["hits"][skip:]]


def by_keys(searcher: tantivy.Searcher, live: tantivy.Query, hashes: list[int]) -> list[Ranked]:
    """Live documents by product hash, in the order given (unscored)."""
    if not hashes:
        return []
    # a disjunction of term queries: for a page of ids it is cheaper than a term_set_query
    either = tantivy.Query.boolean_query(
        [(tantivy.Occur.Should, tantivy.Query.term_query(SCHEMA, "pid_hash", h)) for h in hashes]
    )
    clauses = [(tantivy.Occur.Must, either), (tantivy.Occur.Must, live)]
    hits = searcher.search(tantivy.Query.boolean_query(clauses), limit=len(hashes), count=False).hits
    found = [address for _, address in hits]
    keys = searcher.fast_field_values("pid_hash", found)
    by_key = {int(k or 0): a for k, a in zip(keys, found, strict=True)}
    return [Ranked(0.0, h, by_key[h]) for h in hashes if h in by_key]


def sort_values(doc: SearchDocument, sort: Sort, hit: Ranked, has_text: bool) -> tuple[float | int, ...]:
    """The hit's cursor: its sort key and product hash."""
    if sort is Sort.RELEVANCE and has_text:
        return (hit.score, hit.key)
    if sort in (Sort.PRICE_ASC, Sort.PRICE_DESC):
        return (float(doc.price), hit.key)
    if sort is Sort.RATING:
        return (-1.0 if doc.rating is None else float(doc.rating), hit.key)
    if sort is Sort.NEWEST:
        return (int(doc.created_at_ms), hit.key)
    return (float(doc.popularity), hit.key)
