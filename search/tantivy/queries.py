"""Query building: the text query and the filters.

The text query, per query unit (a word or a two-word synonym phrase, with its synonyms from
``search/analysis/synonyms.txt``): the best field's BM25 score of the unit (field boosts), or, for a word
the catalog does not know, of the catalog words nearest to it (``Vocabulary.expansions``: compared with
the words as typed, matched by their analysed terms, weighted by distance). The units' scores add up; one
unit must match (``minimum_should_match``), all of them add ``COORDINATION``, and the words as a title
phrase add a boost.

Pure functions of the query (and of the index vocabulary), so threads share nothing mutable here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import tantivy

from search.analysis import (
    COORDINATION,
    FIELD_BOOSTS,
    PHRASE_BOOST,
    PHRASE_SLOP,
    TYPO_WEIGHTS,
    auto_fuzziness,
    default_synonyms,
    minimum_should_match,
    query_units,
    typo_edits,
)
from search.port import MAX_RESULT_WINDOW, InvalidQuery, SearchQuery, category_key
from search.tantivy.schema import (
    POSITIONS,
    SCHEMA,
    TEXT_FIELDS,
    analyze,
    category_term,
    fold,
    product_hash,
)
from search.vocabulary import Vocabulary

FALLBACK_TYPO_WEIGHT = 0.8  # of a fuzzy match while the vocabulary is being built (as before it)
FIELD_BITS = {field: 1 << bit for bit, field in enumerate(TEXT_FIELDS)}  # a Vocabulary's field masks
_BOOSTS = dict(zip(TEXT_FIELDS, FIELD_BOOSTS.values(), strict=True))  # title, brand_text, ...


class Unit(NamedTuple):
    typed: str  # the word as typed (folded), or the synonym phrase
    alternatives: list[list[str]]  # analyzed token lists: the unit, then its synonyms


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
    """Query units (``query_units``), each with its alternatives: the unit and its synonyms, analyzed."""
    synonyms = default_synonyms()
    found: list[Unit] = []
    for phrase in query_units(text, synonyms):
        alternatives = [analyze(phrase)] + [analyze(s) for s in synonyms.get(phrase, ())]
        alternatives = [a for a in alternatives if a]
        if alternatives:
            found.append(Unit(fold(phrase), alternatives))
    return found


def _exact(field: str, tokens: list[str]) -> tantivy.Query:
    """One alternative on one field: its term, or its tokens as a phrase (all of them without positions)."""
    if len(tokens) == 1:
        return tantivy.Query.term_query(SCHEMA, field, tokens[0])
    if field in POSITIONS:
        return tantivy.Query.phrase_query(SCHEMA, field, words(tokens))
    return tantivy.Query.boolean_query(
        [(tantivy.Occur.Must, tantivy.Query.term_query(SCHEMA, field, t)) for t in tokens]
    )


def _either(queries: list[tantivy.Query]) -> tantivy.Query:
    return queries[0] if len(queries) == 1 else tantivy.Query.disjunction_max_query(queries)


def _typos(unit: Unit, vocabulary: Vocabulary | None) -> tuple[list[tantivy.Query], list[str]]:
    """The unit's typo clauses (each field's terms of the nearest catalog words, weighted by distance and
    field boost) and their terms; without a vocabulary yet, a constant-score fuzzy match on ``words``."""
    if " " in unit.typed or typo_edits(unit.typed) == 0:
        return [], []
    if vocabulary is None:
        return _fallback_typos(unit), []
    expansions = vocabulary.expansions(unit.typed)
    clauses = []
    for field, bit in FIELD_BITS.items():
        terms = [
            tantivy.Query.boost_query(tantivy.Query.term_query(SCHEMA, field, term), TYPO_WEIGHTS[distance])
            for term, mask, distance in expansions
            if mask & bit
        ]
        if terms:
            clauses.append(tantivy.Query.boost_query(_either(terms), _BOOSTS[field]))
    return clauses, [term for term, _, _ in expansions]


def _fallback_typos(unit: Unit) -> list[tantivy.Query]:
    """Until the vocabulary is built: Tantivy's fuzzy queries on the analysed fields (constant-score,
    field boosts), ``auto_fuzziness`` edits from the analysed word. Slower and a little looser; it serves
    only for the seconds after a change (``search.vocabulary.VocabularyTracker``)."""
    tokens = unit.alternatives[0]
    if len(tokens) != 1 or auto_fuzziness(tokens[0]) == 0:
        return []
    distance = auto_fuzziness(tokens[0])
    return [
        tantivy.Query.boost_query(
            tantivy.Query.fuzzy_term_query(SCHEMA, field, tokens[0], distance=distance),
            boost * FALLBACK_TYPO_WEIGHT,
        )
        for field, boost in _BOOSTS.items()
    ]


def unit_query(unit: Unit, vocabulary: Vocabulary | None) -> tuple[tantivy.Query, list[str]]:
    """The best field's score of the unit (or of its typo expansions), and the expansion terms."""
    clauses = [
        tantivy.Query.boost_query(_either([_exact(field, a) for a in unit.alternatives]), boost)
        for field, boost in _BOOSTS.items()
    ]
    typos, terms = _typos(unit, vocabulary)
    return tantivy.Query.disjunction_max_query(clauses + typos), terms


def text_queries(text: str, vocabulary: Vocabulary | None = None) -> TextQueries:
    """Units add up (see the module docstring); coordination and the title phrase add to them."""
    found = units(text)
    if not found:
        return TextQueries(None, None)
    built = [unit_query(unit, vocabulary) for unit in found]
    match = tantivy.Query.boolean_query(
        [(tantivy.Occur.Should, q) for q, _ in built],
        minimum_number_should_match=minimum_should_match(len(found)),
    )
    if len(built) > 1:
        every = tantivy.Query.boolean_query([(tantivy.Occur.Must, q) for q, _ in built])
        bonus = tantivy.Query.const_score_query(every, COORDINATION)
        match = tantivy.Query.boolean_query([(tantivy.Occur.Must, match), (tantivy.Occur.Should, bonus)])
    tokens = [t for unit in found for t in unit.alternatives[0]]
    if len(tokens) > 1:
        phrase = tantivy.Query.boost_query(
            tantivy.Query.phrase_query(SCHEMA, "title", words(tokens), slop=PHRASE_SLOP), PHRASE_BOOST
        )
        match = tantivy.Query.boolean_query([(tantivy.Occur.Must, match), (tantivy.Occur.Should, phrase)])
    highlight_terms = {t for unit in found for a in unit.alternatives for t in a}
    highlight_terms.update(term for _, terms in built for term in terms)
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
