"""A ``SearchDocument`` as Tantivy stores it (one msgpack blob plus the indexed fields), and back."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple, cast

import msgspec
import tantivy

from search.analysis import category_prefixes
from search.port import SearchDocument
from search.tantivy.schema import SCHEMA, WORDS_FIELD, category_term, suggest_term, tiebreak_weight

_encoder = msgspec.msgpack.Encoder(decimal_format="string")
_decoder = msgspec.msgpack.Decoder(SearchDocument)
_MULTI_VALUED = frozenset({"category", "suggest", "warehouses"})


class CategoryFields(NamedTuple):
    """What a category path adds to a document."""

    text: str  # category_text
    terms: list[str]  # ``category`` keywords, one per path prefix, tagged with their level
    suggestions: list[str]  # ``suggest`` keywords of the path's names


@lru_cache(maxsize=1 << 16)
def category_fields(path: tuple[str, ...]) -> CategoryFields:
    """Catalogs repeat a few hundred paths, so this is computed once per path, not per document."""
    prefixes = category_prefixes(path)
    terms = [category_term(level, prefix) for level, prefix in enumerate(prefixes, start=1)]
    return CategoryFields(" ".join(path), terms, [suggest_term("c", p) for p in path if p.strip()])


@lru_cache(maxsize=1 << 16)
def _brand_suggestion(brand: str) -> str:
    return suggest_term("b", brand)


def build_document(doc: SearchDocument, key: int, blob: bytes) -> tantivy.Document:
    """The Tantivy document of one live product. Typed ``add_*`` calls, because ``Document.from_dict``
    looks every value's type up in the schema."""
    document = tantivy.Document()
    document.add_integer("pid_hash", key)
    document.add_boolean("live", True)
    document.add_unsigned("revision", doc.revision)
    document.add_bytes("doc", blob)
    document.add_text("title", doc.title)
    document.add_boolean("in_stock", doc.in_stock)
    document.add_float("price", float(doc.price))
    rating = doc.rating
    document.add_float("rating_sort", -1.0 if rating is None else float(rating))
    document.add_float("popularity", float(doc.popularity))
    document.add_integer("created_at_ms", doc.created_at_ms)
    document.add_float("tiebreak", tiebreak_weight(key))
    if doc.description:
        document.add_text("description", doc.description)
    if rating is not None:
        document.add_float("rating", float(rating))
    if doc.brand:
        document.add_text("brand", doc.brand)
        document.add_text("brand_text", doc.brand)
        document.add_text("suggest", _brand_suggestion(doc.brand))
    if doc.category_path:
        category = category_fields(doc.category_path)
        document.add_text("category_text", category.text)
        for term in category.terms:
            document.add_text("category", term)
        for name in category.suggestions:
            document.add_text("suggest", name)
    for warehouse in doc.warehouses:
        document.add_text("warehouses", warehouse)
    document.add_text(WORDS_FIELD, _words_text(doc))
    return document


def _words_text(doc: SearchDocument) -> str:
    """The text of every text field, for the unstemmed ``words`` field (one value: one tokenizer pass)."""
    parts = [doc.title, doc.brand, " ".join(doc.category_path), doc.description]
    return "\n".join(part for part in parts if part)


def fields_of(doc: SearchDocument, key: int, blob: bytes) -> dict[str, Any]:
    """The field values ``build_document`` writes for one live product (single-valued fields unwrapped)."""
    values = build_document(doc, key, blob).to_dict()
    return {name: value if name in _MULTI_VALUED else value[0] for name, value in values.items()}


def to_document(doc: SearchDocument, key: int) -> tantivy.Document:
    return build_document(doc, key, _encoder.encode(doc))


def tombstone(key: int, revision: int) -> tantivy.Document:
    """A deleted product: it keeps the delete's revision, so an older upsert arriving later loses."""
    return tantivy.Document.from_dict({"pid_hash": key, "live": False, "revision": revision}, SCHEMA)


def load(searcher: tantivy.Searcher, address: Any) -> SearchDocument:
    blob = searcher.doc(address).get_first("doc")
    return _decoder.decode(cast(bytes, blob))
