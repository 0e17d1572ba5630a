"""The Tantivy schema, its text analyzer and the keys every other module of the adapter agrees on.

Indexing cost grows with the number of fields, so each field earns its place:

* the whole document is one stored msgpack blob (decoded on read), nothing else is stored;
* ``pid_hash`` is the product's id term (deletes, lookups, ``exclude_ids``) and sort tiebreaker;
* numeric fields are fast-only: Tantivy runs range filters and sorts on the columnar values;
* one multi-valued ``category`` keyword holds every path prefix tagged with its level
  (``category_term``): it serves the hierarchical filter and every facet level;
* one ``suggest`` keyword holds brand and category names for completion, tagged by kind;
* ``words`` holds every word of the text fields unstemmed (no frequencies, no positions): typo expansion
  compares a typed word with these (``cooikng`` is one swap from ``cooking``, three edits from its stem
  ``cook``), then matches the analysed form of the words it found on the stemmed fields.
"""

from __future__ import annotations

import hashlib
import unicodedata

import tantivy

TEXT_ANALYZER = "emp_text"  # lowercase + ascii folding + English stemming
WORDS_ANALYZER = "emp_words"  # lowercase + ascii folding, no stemming: the words as typed in the catalog
WORDS_FIELD = "words"  # every word of the text fields, unstemmed: what typo expansion compares against
SEPARATOR = "\x1f"  # joins the parts of a tagged keyword (category level, suggestion kind)

# field -> boost, as in the Elasticsearch adapter's multi_match
TEXT_FIELDS: dict[str, float] = {"title": 3.0, "brand_text": 2.0, "description": 1.0, "category_text": 1.0}
# Only the title needs positions (phrase boost, phrase-prefix completion); the other text fields keep
# frequencies for scoring, which makes them cheaper to index.
POSITIONS = frozenset({"title"})
TIEBREAK_SPREAD = 1e-3


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("pid_hash", indexed=True, fast=True)
    builder.add_boolean_field("live", indexed=True)
    builder.add_unsigned_field("revision", fast=True)
    builder.add_bytes_field("doc", stored=True)
    for name in TEXT_FIELDS:
        index_option = "position" if name in POSITIONS else "freq"
        builder.add_text_field(name, tokenizer_name=TEXT_ANALYZER, index_option=index_option)
    builder.add_text_field("brand", fast=True, tokenizer_name="raw")
    builder.add_text_field("category", fast=True, tokenizer_name="raw")
    builder.add_text_field("warehouses", tokenizer_name="raw")
    builder.add_boolean_field("in_stock", indexed=True)
    for name in ("price", "rating", "rating_sort", "popularity"):
        builder.add_float_field(name, fast=True)
    builder.add_integer_field("created_at_ms", fast=True)
    builder.add_float_field("tiebreak", fast=True)
    builder.add_text_field("suggest", tokenizer_name="raw")
    builder.add_text_field(WORDS_FIELD, tokenizer_name=WORDS_ANALYZER, index_option="basic")
    return builder.build()


SCHEMA = _schema()


def _text_analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def _words_analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .build()
    )


_TEXT = _text_analyzer()
_WORDS = _words_analyzer()


def register_analyzers(index: tantivy.Index) -> None:
    index.register_tokenizer(TEXT_ANALYZER, _text_analyzer())
    index.register_tokenizer(WORDS_ANALYZER, _words_analyzer())


def analyze(text: str) -> list[str]:
    """The tokens the text fields index for ``text``."""
    return [token for token in _TEXT.analyze(text) if token]


def unstemmed(text: str) -> list[str]:
    """The tokens ``words`` indexes for ``text`` (the text fields' tokens before stemming)."""
    return [token for token in _WORDS.analyze(text) if token]


def product_hash(product_id: str) -> int:
    """Stable 63-bit key of a product: its id term, the revision map's key and the sort tiebreaker.

    63 bits, so it fits Tantivy's i64 fields (their term deletes work; u64 term deletes do not).
    """
    return int.from_bytes(hashlib.blake2b(product_id.encode(), digest_size=8).digest(), "big") >> 1


def fold(text: str) -> str:
    """Lowercase, accents stripped, whitespace collapsed (what the analyzers do to a term)."""
    lowered = text.lower()
    if not lowered.isascii():
        decomposed = unicodedata.normalize("NFKD", lowered)
        lowered = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(lowered.split())


def tiebreak_weight(key: int) -> float:
    """A per-product weight in [0, TIEBREAK_SPREAD) for ``weight_by_field``: it scales scores by a tiny
    factor (``log2(2 + w)``), which splits the large groups of equal scores that fuzzy (constant-score)
    matches make, so a relevance page is settled from the first fetch instead of sorting every tied hit."""
    return (key >> 43) / (1 << 20) * TIEBREAK_SPREAD


def category_term(level: int, key: str) -> str:
    """The ``category`` keyword of a path prefix at a level: (2, "Fashion>Men") -> "2\x1fFashion>Men"."""
    return f"{level}{SEPARATOR}{key}"


def suggest_term(kind: str, name: str) -> str:
    """A ``suggest`` keyword: kind ("b" brand, "c" category), folded name (prefix-searchable), name."""
    return f"{kind}{SEPARATOR}{fold(name)}{SEPARATOR}{name.strip()}"
