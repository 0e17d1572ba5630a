"""Pure rules shared by both search adapters, and the Tantivy adapter's pure field/facet helpers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from search.analysis import (
    auto_fuzziness,
    category_prefixes,
    merge_suggestions,
    minimum_should_match,
    parse_synonyms,
    prefix_closeness,
    prefix_fuzziness,
    query_units,
    query_words,
    rank_fuzzy_completions,
    typo_edits,
)
from search.port import DEFAULT_PRICE_RANGES, SearchDocument, SearchQuery
from search.tantivy.documents import fields_of as _fields_of
from search.tantivy.facets import facets as _facets
from search.tantivy.schema import TIEBREAK_SPREAD, category_term, product_hash, suggest_term, tiebreak_weight


def doc(**changes: object) -> SearchDocument:
    base: dict[str, object] = {
        "product_id": "bb:1",
        "revision": 3,
        "supplier_id": "bb",
        "sku": "BB-1",
        "title": "Garlic Oil",
        "price": Decimal("10.50"),
    }
    return SearchDocument(**{**base, **changes})  # type: ignore[arg-type]


# -- search.analysis ----------------------------------------------------------------------------


@pytest.mark.parametrize(("term", "edits"), [("ab", 0), ("abc", 1), ("abcde", 1), ("abcdef", 2)])
def test_auto_fuzziness_follows_elasticsearch_auto(term: str, edits: int) -> None:
    assert auto_fuzziness(term) == edits


@pytest.mark.parametrize(("n", "need"), [(0, 0), (1, 1), (2, 1), (4, 1), (5, 1), (8, 2), (16, 4)])
def test_minimum_should_match_is_one_unit_then_a_quarter(n: int, need: int) -> None:
    assert minimum_should_match(n) == need


@pytest.mark.parametrize(("word", "edits"), [("ab", 0), ("abc", 1), ("abcd", 1), ("abcde", 2)])
def test_typo_edits_allow_two_from_five_letters(word: str, edits: int) -> None:
    assert typo_edits(word) == edits


def test_query_units_keep_two_word_synonyms_together() -> None:
    table = parse_synonyms(["tee, t shirt"])
    assert query_units("Blue T Shirt men", table) == ["blue", "t shirt", "men"]


def test_prefix_fuzziness_grows_with_the_typed_prefix() -> None:
    assert [prefix_fuzziness("x" * n) for n in (3, 4, 7, 8)] == [0, 1, 1, 2]


def test_query_words_lowercases_and_caps() -> None:
    assert query_words("Basmati RICE, 5kg!") == ["basmati", "rice", "5kg"]
    assert len(query_words("a " * 40)) == 16


def test_synonym_rules_equivalent_and_explicit() -> None:
    table = parse_synonyms(["tee, t shirt", "sneakers => shoes"])
    assert table["tee"] == ("t shirt",)
    assert table["t shirt"] == ("tee",)
    assert table["sneakers"] == ("shoes",)
    assert "shoes" not in table


def test_merge_suggestions_dedupes_and_fills() -> None:
    merged = merge_suggestions(["Nivea", "nivea "], ["Beauty"], ["Nivea Cream", "Beauty"], 10)
    assert merged == ["Nivea", "Beauty", "Nivea Cream"]
    assert len(merge_suggestions([f"b{i}" for i in range(9)], [], [], 5)) == 5


def test_category_prefixes_skip_blank_parts() -> None:
    assert category_prefixes(("Fashion", " ", "Men ")) == ["Fashion", "Fashion>Men"]


# -- Tantivy helpers ------------------------------------------------------------------------------


def test_product_hash_is_stable_63_bit() -> None:
    key = product_hash("bb:1")
    assert key == product_hash("bb:1") != product_hash("bb:2")
    assert 0 <= key < 1 << 63  # fits Tantivy's i64 fields, whose term deletes work


def test_tiebreak_weight_stays_a_tiny_score_factor() -> None:
    weights = [tiebreak_weight(product_hash(f"p{i}")) for i in range(2000)]
    assert all(0.0 <= w < TIEBREAK_SPREAD for w in weights)
    assert len(set(weights)) > 1990  # splits ties: almost every product gets its own factor


def test_fields_tag_category_levels_and_suggestion_kinds() -> None:
    fields = _fields_of(
        doc(brand="Fresho", category_path=("Fruits", "Fresh "), rating=None, warehouses=("W1",)), 7, b"x"
    )
    assert fields["category"] == [category_term(1, "Fruits"), category_term(2, "Fruits>Fresh")]
    assert fields["suggest"] == [
        suggest_term("b", "Fresho"),
        suggest_term("c", "Fruits"),
        suggest_term("c", "Fresh "),
    ]
    assert suggest_term("c", "Fresh ").split("\x1f") == ["c", "fresh", "Fresh"]
    assert fields["rating_sort"] == -1.0 and "rating" not in fields  # no rating: no range-filter value
    assert "description" not in fields  # empty text is not indexed
    assert (fields["pid_hash"], fields["revision"], fields["price"], fields["warehouses"]) == (
        7,
        3,
        10.5,
        ["W1"],
    )


def test_facets_keep_the_level_below_the_filter_sorted_by_count() -> None:
    raw = {
        "category": {
            "buckets": [
                {"key": category_term(1, "Fashion"), "doc_count": 9},
                {"key": category_term(2, "Fashion>Women"), "doc_count": 4},
                {"key": category_term(2, "Fashion>Men"), "doc_count": 4},
                {"key": category_term(2, "Fashion>Kids"), "doc_count": 1},
            ]
        },
        "brand": {"buckets": [{"key": "B", "doc_count": 2}, {"key": "A", "doc_count": 2}]},
        "price": {"buckets": [{"key": "0-100", "doc_count": 5}]},
    }
    facets = _facets(raw, SearchQuery(category=("Fashion",), facet_size=2))
    assert [(b.value, b.count) for b in facets["category"]] == [("Fashion>Men", 4), ("Fashion>Women", 4)]
    assert [b.value for b in facets["brand"]] == ["A", "B"]
    assert [(b.value, b.count) for b in facets["price"]] == [
        (r.key, 5 if r.key == "0-100" else 0) for r in DEFAULT_PRICE_RANGES
    ]
    top = _facets(raw, SearchQuery())
    assert [b.value for b in top["category"]] == ["Fashion"]


def test_fuzzy_completions_rank_the_closest_start_first() -> None:
    ranked = rank_fuzzy_completions("shmp", ["Tata Sampann", "Anti-Dandruff Shampoo", "Ship Model"])
    assert ranked[0] == "Anti-Dandruff Shampoo"
    assert prefix_closeness("garlik", "Garlic Oil") == (1, -5)
    assert prefix_closeness("cooikng", "Cooking Spray")[0] == 1  # a swap is one edit
