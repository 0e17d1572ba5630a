"""Typo expansion from the index vocabulary (search.vocabulary) and its use by the Tantivy adapter."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

import search.tantivy.reads as tantivy_index
from search.port import SearchDocument, SearchQuery, SearchResult, Sort
from search.tantivy import TantivySearchIndex
from search.vocabulary import Vocabulary, VocabularyTracker

TITLES = (
    "Organic Basmati Rice",
    "Brown Rice Flour",
    "Garlic Oil",
    "Men Blue Shirt",
    "Women Black Skirt",
    "Cotton T-shirt",
    "Green Tea",
    "Price Tag Holder",
)


def doc(i: int, title: str, **changes: object) -> SearchDocument:
    base: dict[str, object] = {
        "product_id": f"p:{i}",
        "revision": 1,
        "supplier_id": "s",
        "sku": f"SKU-{i}",
        "title": title,
        "description": f"{title} from our farm",
        "brand": "Fresho" if i % 2 else "Roadster",
        "category_path": ("Food", "Staples") if i < 3 else ("Fashion", "Men"),
        "price": Decimal(10 + i),
        "popularity": float(i),
    }
    return SearchDocument(**{**base, **changes})  # type: ignore[arg-type]


def test_variants_are_the_terms_within_the_distance_with_their_fields() -> None:
    vocabulary = Vocabulary({"organic": 0b01, "organ": 0b10, "rice": 0b01, "price": 0b11, "shirt": 0b01})
    assert vocabulary.variants("orgnaic", 2) == (("organic", 0b01),)  # a transposition is one edit
    assert vocabulary.variants("organi", 1) == (("organ", 0b10), ("organic", 0b01))
    assert vocabulary.variants("rice", 1) == (("price", 0b11), ("rice", 0b01))
    assert vocabulary.variants("xyz", 1) == ()
    assert vocabulary.variants("rice", 1) is vocabulary.variants("rice", 1)  # memoized


def test_expansions_compare_typed_words_with_unstemmed_words_then_use_their_stems() -> None:
    stems = {"cook": 0b01, "coconut": 0b01, "organ": 0b11, "sneaker": 0b01, "speaker": 0b01, "rice": 0b01}
    words = {"cooking": 5, "coconut": 3, "organic": 9, "organ": 1, "sneakers": 4, "speakers": 2, "rice": 7}
    stem = {"cooking": "cook", "organic": "organ", "sneakers": "sneaker", "speakers": "speaker"}
    vocabulary = Vocabulary(stems, words=words, stem=lambda w: [stem.get(w, w)])
    assert vocabulary.expansions("cooikng") == (("cook", 0b01, 1),)  # a swap is one edit from "cooking"
    assert vocabulary.expansions("oragnic") == (("organ", 0b11, 1),)
    assert vocabulary.expansions("sneekers") == (("sneaker", 0b01, 1),)  # not "speakers", two edits away
    assert vocabulary.expansions("rice") == ()  # a known word is not expanded
    assert vocabulary.expansions("cooking") == ()  # known as typed
    assert vocabulary.expansions("xq") == ()  # too short to guess


@pytest.fixture
def index(tmp_path: Path) -> TantivySearchIndex:
    idx = TantivySearchIndex(tmp_path)
    asyncio.run(idx.ensure_index())
    asyncio.run(idx.upsert([doc(i, t) for i, t in enumerate(TITLES)]))
    return idx


def tracker_of(index: TantivySearchIndex) -> VocabularyTracker:
    engine = index._current()
    tantivy_index._vocabulary(engine)
    tracker = tantivy_index._trackers[engine]
    tracker.min_rebuild_s = 0.0
    tracker.refresh()
    return tracker


def summary(result: SearchResult) -> list[tuple[str, float, dict[str, list[str]]]]:
    return [(h.document.product_id, round(h.score, 5), h.highlights) for h in result.hits]


QUERIES = (
    SearchQuery(text="orgnaic rcie"),
    SearchQuery(text="shrit", sort=Sort.PRICE_ASC),
    SearchQuery(text="garlik oil", brands=("Roadster",)),
    SearchQuery(text="tea", category=("Food",)),
    SearchQuery(text="blak skirt women"),
)


def test_vocabulary_queries_find_a_subset_of_the_fallback_fuzzy_queries(
    index: TantivySearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until the vocabulary is built, a typo matches every word within its edits (constant score); the
    vocabulary keeps only the nearest words of unknown ones, so it finds a subset, ranked by BM25."""
    assert tracker_of(index).current() is not None
    with_vocabulary = [asyncio.run(index.search(q)) for q in QUERIES]
    monkeypatch.setattr(tantivy_index, "_vocabulary", lambda engine: None)
    with_fuzzy = [asyncio.run(index.search(q)) for q in QUERIES]
    for a, b in zip(with_vocabulary, with_fuzzy, strict=True):
        assert {h.document.product_id for h in a.hits} <= {h.document.product_id for h in b.hits}
        assert a.total <= b.total
    assert [h.document.title for h in with_vocabulary[0].hits][:1] == ["Organic Basmati Rice"]
    assert [h.document.title for h in with_fuzzy[0].hits][:1] == ["Organic Basmati Rice"]
    assert "<em>Organic</em>" in with_vocabulary[0].hits[0].highlights["title"][0]


def test_vocabulary_follows_new_words_but_not_stock_flag_updates(index: TantivySearchIndex) -> None:
    tracker = tracker_of(index)
    builds = tracker.builds
    asyncio.run(index.set_stock_flags([("p:1", False)]))
    assert tracker.current() is None  # the index changed: fuzzy queries until re-checked
    tracker.refresh()
    assert tracker.current() is not None and tracker.builds == builds  # same text: no rebuild

    asyncio.run(index.upsert([doc(20, "Quinoa Puffs")]))
    assert tracker.current() is None
    tracker.refresh()
    assert tracker.builds == builds + 1
    found = asyncio.run(index.search(SearchQuery(text="quinao")))
    assert [h.document.product_id for h in found.hits] == ["p:20"]


def test_sorted_page_past_the_last_hit_is_empty(index: TantivySearchIndex) -> None:
    tracker_of(index)
    query = SearchQuery(text="rice", sort=Sort.PRICE_ASC, limit=5)
    first = asyncio.run(index.search(query))
    assert first.total == len(first.hits) == 2  # rice, rice (a known word is not expanded to price)
    beyond = asyncio.run(index.search(msgspec.structs.replace(query, offset=20)))
    assert beyond.hits == [] and beyond.total == 2
    second = asyncio.run(index.search(msgspec.structs.replace(query, offset=1, limit=5)))
    assert [h.document.product_id for h in second.hits] == [h.document.product_id for h in first.hits[1:]]


def test_rebuilds_are_spaced_and_fuzzy_queries_serve_meanwhile(index: TantivySearchIndex) -> None:
    tracker = tracker_of(index)
    tracker.min_rebuild_s = 0.3
    tracker.refresh()  # nothing changed: no rebuild, no wait
    asyncio.run(index.upsert([doc(21, "Millet Noodles")]))
    assert tracker.current() is None
    found = asyncio.run(index.search(SearchQuery(text="milet noodles")))  # fuzzy queries meanwhile
    assert [h.document.product_id for h in found.hits] == ["p:21"]
    started = time.monotonic()
    tracker.refresh()
    assert time.monotonic() - started >= 0.2
    assert tracker.current() is not None
