"""Query building: the text query (per-field ``best_fields`` with AUTO fuzziness, synonyms from
``search/analysis/synonyms.txt`` expanded at query time, a title phrase boost) and the filters.

Pure functions of the query (and of the index vocabulary), so threads share nothing mutable here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import tantivy

from search.analysis import auto_fuzziness, default_synonyms, minimum_should_match, query_words
from search.port import MAX_RESULT_WINDOW, InvalidQuery, SearchQuery, category_key
from search.tantivy.schema import POSITIONS, SCHEMA, TEXT_FIELDS, analyze, category_term, product_hash
from search.vocabulary import Vocabulary

PHRASE_BOOST = 2.0
FUZZY_WEIGHT = 0.8  # a fuzzy match scores a little below the exact term
FIELD_BITS = {field: 1 << bit for bit, field in enumerate(TEXT_FIELDS)}  # a Vocabulary's field masks

Unit = list[list[str]]  # one query unit: its alternatives (the word, then its synonyms), each analyzed


class TextQueries(NamedTuple):
    match: tantivy.Query | None  # None: no words to match (every document matches)
    highlight: tantivy.Query | None  # the terms worth marking in snippets


def validate(query: SearchQuery) -> None:
    if query.limit < 0 or query.offset < 0:
        raise InvalidQuery("limit and offset must not be negative")
    if query.search_after is None and query.offset + query.limit > MAX_RESULT_WINDOW:
        raise InvalidQuery(
            f"offset + limit must be at most {MAX_RESULT_WINDOW}; page deeper with search_after"
        )
    if query.search_after is not None:
        after = query.search_after
        if (
            len(after) != 2
            or not isinstance(after[0], (int, float))
            or isinstance(after[0], bool)
            or not isinstance(after[1], int)
            or isinstance(after[1], bool)
        ):
            raise InvalidQuery("search_after must be the sort_values of a hit from the same sort")


def words(tokens: Sequence[str]) -> list[str | tuple[int, str]]:
    """Tokens as the phrase-query builders type them."""
    return list(tokens)


def units(text: str) -> list[Unit]:
    """Query units: each a list of alternatives (analyzed token lists): the word and its synonyms."""
    synonyms = default_synonyms()
    typed = query_words(text)
    found: list[Unit] = []
    i = 0
    while i < len(typed):
        pair = " ".join(typed[i : i + 2]) if i + 1 < len(typed) else None
        if pair and pair in synonyms:
            phrase, i = pair, i + 2
        else:
            phrase, i = typed[i], i + 1
        alternatives = [analyze(phrase)] + [analyze(s) for s in synonyms.get(phrase, ())]
        alternatives = [a for a in alternatives if a]
        if alternatives:
            found.append(alternatives)
    return found


def unit_query(field: str, tokens: list[str], vocabulary: Vocabulary | None = None) -> tantivy.Query | None:
    """One alternative of a query unit on one field: a phrase, or a word that also matches its typo
    variants (constant-scored a little below the exact term). With a ``vocabulary`` the variants are
    the terms it found within the distance, as plain term queries: the same matches and scores as a
    ``fuzzy_term_query``, without building a Levenshtein automaton per field and per pass."""
    if not tokens:
        return None
    if len(tokens) > 1:
        if field in POSITIONS:
            return tantivy.Query.phrase_query(SCHEMA, field, words(tokens))
        return tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, tantivy.Query.term_query(SCHEMA, field, t)) for t in tokens]
        )
    token = tokens[0]
    exact = tantivy.Query.term_query(SCHEMA, field, token)
    distance = auto_fuzziness(token)
    if distance == 0:
        return exact
    if vocabulary is None:
        near = tantivy.Query.boost_query(
            tantivy.Query.fuzzy_term_query(SCHEMA, field, token, distance=distance), FUZZY_WEIGHT
        )
    else:
        bit = FIELD_BITS[field]
        terms = [term for term, fields in vocabulary.variants(token, distance) if fields & bit]
        if not terms:  # no term of this field is that near, so neither is the token itself
            return exact
        matches = [tantivy.Query.term_query(SCHEMA, field, term) for term in terms]
        either = matches[0]
        if len(matches) > 1:
            either = tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in matches])
        near = tantivy.Query.const_score_query(either, FUZZY_WEIGHT)
    return tantivy.Query.disjunction_max_query([exact, near])


def _field_query(field: str, found: list[Unit], vocabulary: Vocabulary | None) -> tantivy.Query:
    """Every unit on one field, ``minimum_should_match`` of them required."""
    unit_queries = []
    for alternatives in found:
        options = [q for q in (unit_query(field, a, vocabulary) for a in alternatives) if q is not None]
        unit_queries.append(options[0] if len(options) == 1 else tantivy.Query.disjunction_max_query(options))
    return tantivy.Query.boolean_query(
        [(tantivy.Occur.Should, q) for q in unit_queries],
        minimum_number_should_match=minimum_should_match(len(found)),
    )


def text_queries(text: str, vocabulary: Vocabulary | None = None) -> TextQueries:
    """``best_fields``: the best field's match counts; a phrase on the title adds to it."""
    found = units(text)
    if not found:
        return TextQueries(None, None)
    per_field = [
        tantivy.Query.boost_query(_field_query(field, found, vocabulary), boost)
        for field, boost in TEXT_FIELDS.items()
    ]
    match = tantivy.Query.disjunction_max_query(per_field)
    tokens = [t for alternatives in found for t in alternatives[0]]
    if len(tokens) > 1:
        phrase = tantivy.Query.boost_query(
            tantivy.Query.phrase_query(SCHEMA, "title", words(tokens), slop=1), PHRASE_BOOST
        )
        match = tantivy.Query.boolean_query([(tantivy.Occur.Must, match), (tantivy.Occur.Should, phrase)])
    highlight_terms = {t for alternatives in found for a in alternatives for t in a}
    highlight = tantivy.Query.boolean_query(
        [
            (tantivy.Occur.Should, tantivy.Query.term_query(SCHEMA, field, t))
            for t in sorted(highlight_terms)
            for field in ("title", "description")
        ]
    )
    return TextQueries(match, highlight)


def category_depth(query: SearchQuery) -> int:
    return len([part for part in query.category if part.strip()])


def filters(query: SearchQuery) -> list[tuple[tantivy.Occur, tantivy.Query]]:
    """The query's filters as boolean clauses that do not score."""
    out: list[tuple[tantivy.Occur, tantivy.Query]] = []

    def must(q: tantivy.Query) -> None:
        out.append((tantivy.Occur.Must, tantivy.Query.const_score_query(q, 0.0)))

    if query.category:
        term = category_term(category_depth(query), category_key(query.category))
        must(tantivy.Query.term_query(SCHEMA, "category", term))
    if query.brands:
        must(tantivy.Query.term_set_query(SCHEMA, "brand", list(query.brands)))
    if query.price_min is not None or query.price_max is not None:
        low = None if query.price_min is None else float(query.price_min)
        high = None if query.price_max is None else float(query.price_max)
        must(
            tantivy.Query.range_query(
                SCHEMA, "price", tantivy.FieldType.Float, lower_bound=low, upper_bound=high
            )
        )
    if query.rating_min is not None:
        rating = float(query.rating_min)
        must(tantivy.Query.range_query(SCHEMA, "rating", tantivy.FieldType.Float, lower_bound=rating))
    if query.in_stock_only:
        must(tantivy.Query.term_query(SCHEMA, "in_stock", True))
    if query.warehouses is not None:
        if query.warehouses:
            must(tantivy.Query.term_set_query(SCHEMA, "warehouses", list(query.warehouses)))
        else:
            must(tantivy.Query.empty_query())
    if query.exclude_ids:
        keys = [product_hash(pid) for pid in query.exclude_ids]
        out.append((tantivy.Occur.MustNot, tantivy.Query.term_set_query(SCHEMA, "pid_hash", keys)))
    return out
