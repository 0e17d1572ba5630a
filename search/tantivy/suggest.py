"""Autocomplete: brand and category names starting with the prefix, then titles containing it as a
phrase prefix (titles that start with it first); only when that finds little, typo-tolerant prefixes."""

from __future__ import annotations

import tantivy

from search.analysis import (
    auto_fuzziness,
    merge_suggestions,
    prefix_fuzziness,
    query_words,
    rank_fuzzy_completions,
)
from search.tantivy.documents import load
from search.tantivy.engine import Engine
from search.tantivy.queries import words as phrase_words
from search.tantivy.schema import SCHEMA, SEPARATOR, analyze, fold

TITLE_FETCH_FACTOR = 5  # titles fetched per suggestion wanted (many titles repeat a completion)


def suggest(engine: Engine, prefix: str, limit: int) -> list[str]:
    searcher = engine.index.searcher()
    typed = fold(prefix)
    typed_words = query_words(typed)
    if not typed_words:
        return []

    def names(kind: str) -> list[str]:
        terms = searcher.terms_with_prefix(
            "suggest", f"{kind}{SEPARATOR}{typed}", filter_query=engine.live_query, limit=limit
        )
        return [term.split(SEPARATOR, 2)[-1] for term, _ in terms]

    brands, categories = names("b"), names("c")
    titles = _title_completions(searcher, engine, typed_words, typed, limit, fuzzy=False)
    if len(brands) + len(categories) + len(titles) < min(3, limit) and prefix_fuzziness(typed_words[-1]):
        near = _title_completions(searcher, engine, typed_words, typed, limit, fuzzy=True)
        near += _fuzzy_brands(searcher, engine, typed_words[-1], limit)
        titles += rank_fuzzy_completions(typed, near)
    return merge_suggestions(brands, categories, titles, limit)


def _prefix_token(word: str) -> str:
    """The indexed (stemmed) form to prefix-match a word being typed: "capsule" -> "capsul"."""
    stemmed = analyze(word)
    return stemmed[0] if stemmed and len(stemmed[0]) <= len(word) else word


def _title_completions(
    searcher: tantivy.Searcher, engine: Engine, typed_words: list[str], typed: str, limit: int, *, fuzzy: bool
) -> list[str]:
    head = [token for word in typed_words[:-1] for token in analyze(word)]
    last = _prefix_token(typed_words[-1])
    clauses: list[tuple[tantivy.Occur, tantivy.Query]] = [(tantivy.Occur.Must, engine.live_query)]
    if fuzzy:
        for token in head:
            near = tantivy.Query.fuzzy_term_query(SCHEMA, "title", token, auto_fuzziness(token))
            clauses.append((tantivy.Occur.Must, near))
        near_prefix = tantivy.Query.fuzzy_term_query(
            SCHEMA, "title", last, distance=prefix_fuzziness(last), prefix=True
        )
        clauses.append((tantivy.Occur.Must, near_prefix))
    else:
        phrase = tantivy.Query.phrase_prefix_query(SCHEMA, "title", phrase_words([*head, last]))
        clauses.append((tantivy.Occur.Must, phrase))
    query = tantivy.Query.boolean_query(clauses)
    fetch = limit * TITLE_FETCH_FACTOR
    hits = searcher.search(query, limit=fetch, count=False, order_by_field="popularity").hits
    titles = [load(searcher, address).title.strip() for _, address in hits]
    titles.sort(key=lambda title: not fold(title).startswith(typed))  # stable: popularity within
    return titles


def _fuzzy_brands(searcher: tantivy.Searcher, engine: Engine, word: str, limit: int) -> list[str]:
    token = _prefix_token(word)
    if prefix_fuzziness(token) == 0:
        return []
    near = tantivy.Query.fuzzy_term_query(
        SCHEMA, "brand_text", token, distance=prefix_fuzziness(token), prefix=True
    )
    query = tantivy.Query.boolean_query([(tantivy.Occur.Must, engine.live_query), (tantivy.Occur.Must, near)])
    result = searcher.aggregate(query, {"b": {"terms": {"field": "brand", "size": limit}}})
    return [str(b["key"]) for b in result["b"]["buckets"]]
