"""The read path of a search: the query, its page, its facets and its hits with highlights.

Reads run inline on the event loop (``TantivySearchIndex.search``): a search spends a good part of its
CPU in Python, and handing it to worker threads costs GIL hand-offs without adding throughput.
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

import tantivy

from search.analysis import query_words
from search.port import Hit, SearchDocument, SearchQuery, SearchResult, Sort
from search.tantivy.documents import load
from search.tantivy.engine import Engine
from search.tantivy.facets import FACET_FETCH, DocumentKey, aggregations, counted, document_key, facets
from search.tantivy.paging import (
    FIELD_SORTS,
    POPULARITY,
    Ranked,
    after_filter,
    by_keys,
    relevance_page,
    sort_values,
    top_hit_keys,
    top_hits,
)
from search.tantivy.queries import filters, text_queries
from search.tantivy.schema import SCHEMA, TEXT_FIELDS, WORDS_FIELD, analyze, fold
from search.vocabulary import Vocabulary, VocabularyTracker

SNIPPET_CHARS = 150
_trackers: weakref.WeakKeyDictionary[Engine, VocabularyTracker] = weakref.WeakKeyDictionary()


class Page(NamedTuple):
    hits: list[Ranked]
    total: int
    aggregations: dict[str, Any]  # the facet aggregations' result ({} without facets)


def _vocabulary(engine: Engine) -> Vocabulary | None:
    """The text vocabulary serving the engine's index (``VocabularyTracker.serving``: current, or the
    previous one while a change is being taken in; None only if the index has nothing to read)."""
    tracker = _trackers.get(engine)
    if tracker is None:
        fresh = VocabularyTracker(
            engine.path,
            list(TEXT_FIELDS),
            engine.index.searcher,
            engine.index.reload,
            words_field=WORDS_FIELD,
            stem=analyze,
        )
        tracker = _trackers.setdefault(engine, fresh)
    return tracker.serving()


def warm_vocabulary(engine: Engine) -> None:
    """Build the vocabulary now if it is missing or stale (benchmarks and evaluations, before timing)."""
    _vocabulary(engine)
    tracker = _trackers[engine]
    if tracker.current() is None:
        tracker.refresh()


def correct(engine: Engine, text: str) -> str | None:
    """``SearchIndex.correct`` from the vocabulary (``Vocabulary.correction`` per word)."""
    vocabulary = _vocabulary(engine)
    typed = query_words(text)
    if vocabulary is None or not typed:
        return None
    fixed = [vocabulary.correction(fold(word)) or word for word in typed]
    return " ".join(fixed) if fixed != typed else None


def search(engine: Engine, query: SearchQuery) -> SearchResult:
    searcher = engine.index.searcher()
    text = text_queries(query.text, _vocabulary(engine) if query.text else None)
    clauses: list[tuple[tantivy.Occur, tantivy.Query]] = [(tantivy.Occur.Must, engine.live_query)]
    if text.match is not None:
        clauses.append((tantivy.Occur.Must, text.match))
    clauses.extend(filters(query))
    base = tantivy.Query.boolean_query(clauses)
    loaded: dict[DocumentKey, SearchDocument] = {}
    if query.sort is Sort.RELEVANCE and text.match is not None:
        page = _relevance(searcher, base, query, loaded)
    else:
        page = _field_sorted(searcher, engine, base, query)
    hits = _hits(searcher, page.hits, query, text.highlight, loaded)
    found = facets(page.aggregations, query) if query.with_facets else {}
    return SearchResult(hits=hits, total=page.total, facets=found)


def _relevance(
    searcher: tantivy.Searcher,
    base: tantivy.Query,
    query: SearchQuery,
    loaded: dict[DocumentKey, SearchDocument],
) -> Page:
    page = relevance_page(searcher, base, query, FACET_FETCH if query.with_facets else 0)
    if not query.with_facets:
        return Page(page.hits, page.total, {})
    if page.every is not None:  # the fetch holds every match: count the facets over those
        return Page(page.hits, page.total, counted(searcher, page.every, loaded))
    return Page(page.hits, page.total, searcher.aggregate(base, aggregations(query)))


def _field_sorted(
    searcher: tantivy.Searcher, engine: Engine, base: tantivy.Query, query: SearchQuery
) -> Page:
    """A page sorted on a fast field, by Tantivy's ``top_hits`` aggregation, with the total and facets
    aggregated in the same pass when there is no cursor."""
    sort = FIELD_SORTS.get(query.sort, POPULARITY)
    aggs: dict[str, Any] = {"total": {"value_count": {"field": "pid_hash"}}}
    if query.with_facets:
        aggs.update(aggregations(query))
    skip = 0 if query.search_after is not None else query.offset
    page = top_hits(sort, skip + query.limit)
    if query.search_after is None:
        result = searcher.aggregate(base, {**aggs, "page": page})
        page_result = result
    else:
        after = tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, base), (tantivy.Occur.Must, after_filter(sort, query))]
        )
        result = searcher.aggregate(base, aggs)
        page_result = searcher.aggregate(after, {"page": page})
    hashes = top_hit_keys(page_result["page"], skip)
    return Page(by_keys(searcher, engine.live_query, hashes), int(result["total"]["value"] or 0), result)


def _documents(
    searcher: tantivy.Searcher, page: list[Ranked], loaded: dict[DocumentKey, SearchDocument]
) -> list[SearchDocument]:
    """The documents of a page's hits (those the facet count read already are not read again)."""
    return [loaded.get(document_key(hit.address)) or load(searcher, hit.address) for hit in page]


def _snippet_generators(
    searcher: tantivy.Searcher, highlight: tantivy.Query | None, query: SearchQuery, page: list[Ranked]
) -> dict[str, tantivy.SnippetGenerator]:
    generators: dict[str, tantivy.SnippetGenerator] = {}
    if query.with_highlights and highlight is not None and page:
        for field in ("title", "description"):
            generator = tantivy.SnippetGenerator.create(searcher, highlight, SCHEMA, field)
            generator.set_max_num_chars(SNIPPET_CHARS)
            generators[field] = generator
    return generators


def _highlights(generators: dict[str, tantivy.SnippetGenerator], doc: SearchDocument) -> dict[str, list[str]]:
    """HTML-escaped fragments of the fields with a match, marked with <em>."""
    highlights: dict[str, list[str]] = {}
    for field, generator in generators.items():
        snippet = generator.snippet_from_doc(tantivy.Document(**{field: getattr(doc, field)}))
        if snippet.highlighted():
            highlights[field] = [snippet.to_html().replace("<b>", "<em>").replace("</b>", "</em>")]
    return highlights


def _hits(
    searcher: tantivy.Searcher,
    page: list[Ranked],
    query: SearchQuery,
    highlight: tantivy.Query | None,
    loaded: dict[DocumentKey, SearchDocument],
) -> list[Hit]:
    generators = _snippet_generators(searcher, highlight, query, page)
    has_text = highlight is not None
    return [
        Hit(
            document=doc,
            score=hit.score,
            sort_values=sort_values(doc, query.sort, hit, has_text),
            highlights=_highlights(generators, doc),
        )
        for hit, doc in zip(page, _documents(searcher, page, loaded), strict=True)
    ]
