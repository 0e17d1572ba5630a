"""How the Elasticsearch adapter lays out an index: settings with the analyzers, the mappings, and the
indexed body (``_source``) of a document, and back.

The analyzers: lowercase + asciifolding, light English stemming, an unstemmed ``raw`` sub-field of every
text field (what typos are compared with), an edge-n-gram autocomplete sub-field,
and a search-time synonym filter whose rules come inline from ``search/analysis/synonyms.txt`` (no file
to deploy on the servers; editing synonyms needs no reindex). The template ``<name>-template`` carries
them to every physical index ``<name>-*``.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from search.analysis import category_prefixes, read_synonym_rules
from search.port import MAX_CATEGORY_DEPTH, MAX_RESULT_WINDOW, SearchDocument

TITLE_SUFFIX_WORDS = 4  # completion inputs: the title and the title from each of its first words on
SOURCE_EXCLUDES = ["suggest_title", "suggest_brand", "suggest_category", "category_text"]


def index_settings(synonym_rules: Sequence[str] | None = None) -> dict[str, Any]:
    rules = list(read_synonym_rules() if synonym_rules is None else synonym_rules)
    return {
        "index": {"number_of_shards": 1, "max_result_window": MAX_RESULT_WINDOW},
        "analysis": {
            "filter": {
                "emp_synonyms": {"type": "synonym_graph", "synonyms": rules, "lenient": True},
                "emp_stemmer": {"type": "stemmer", "language": "light_english"},
                "emp_edge_ngram": {"type": "edge_ngram", "min_gram": 1, "max_gram": 20},
            },
            "analyzer": {
                "emp_text": {
                    "type": "custom",
                    "tokenizer": "standard",
                    "filter": ["lowercase", "asciifolding", "emp_stemmer"],
                },
                "emp_text_search": {
                    "type": "custom",
                    "tokenizer": "standard",
                    "filter": ["lowercase", "asciifolding", "emp_synonyms", "emp_stemmer"],
                },
                "emp_autocomplete": {
                    "type": "custom",
                    "tokenizer": "standard",
                    "filter": ["lowercase", "asciifolding", "emp_edge_ngram"],
                },
                "emp_folded": {
                    "type": "custom",
                    "tokenizer": "standard",
                    "filter": ["lowercase", "asciifolding"],
                },
            },
        },
    }


def _text(**extra: Any) -> dict[str, Any]:
    return {"type": "text", "analyzer": "emp_text", "search_analyzer": "emp_text_search", **extra}


RAW = {"type": "text", "analyzer": "emp_folded", "index_options": "docs", "norms": False}
"""The unstemmed form of a text field (``<field>.raw``): typo matching compares typed words with these."""


def _completion() -> dict[str, Any]:
    return {"type": "completion", "analyzer": "emp_folded", "search_analyzer": "emp_folded"}


def index_mappings() -> dict[str, Any]:
    keyword = {"type": "keyword"}
    source_only = {"type": "keyword", "index": False, "doc_values": False}
    properties: dict[str, Any] = {
        "product_id": keyword,
        "live": {"type": "boolean"},
        "revision": {"type": "long"},
        "supplier_id": keyword,
        "sku": keyword,
        "title": _text(
            fields={
                "autocomplete": {
                    "type": "text",
                    "analyzer": "emp_autocomplete",
                    "search_analyzer": "emp_folded",
                },
                "keyword": {"type": "keyword", "ignore_above": 512},
                "raw": RAW,
            }
        ),
        "description": _text(fields={"raw": RAW}),
        "brand": {"type": "keyword", "fields": {"text": _text(), "raw": RAW}},
        "category_path": keyword,  # every path prefix: hierarchical filter
        "category": keyword,  # the full path
        "category_names": source_only,
        "category_text": _text(fields={"raw": RAW}),
        "price": {"type": "scaled_float", "scaling_factor": 100},
        "price_exact": source_only,
        "currency": source_only,
        "rating": {"type": "float"},
        "rating_sort": {"type": "float"},
        "in_stock": {"type": "boolean"},
        "warehouses": keyword,
        "popularity": {"type": "double"},
        "created_at_ms": {"type": "long"},
        "suggest_title": _completion(),
        "suggest_brand": _completion(),
        "suggest_category": _completion(),
    }
    for level in range(1, MAX_CATEGORY_DEPTH + 1):
        properties[f"cat_lvl_{level}"] = keyword
    return {"dynamic": "strict", "properties": properties}


def to_source(doc: SearchDocument) -> dict[str, Any]:
    """The indexed body of a live document."""
    prefixes = category_prefixes(doc.category_path)
    words = doc.title.split()
    weight = max(0, min(int(doc.popularity), 2**31 - 1))
    source: dict[str, Any] = {
        "product_id": doc.product_id,
        "live": True,
        "revision": doc.revision,
        "supplier_id": doc.supplier_id,
        "sku": doc.sku,
        "title": doc.title,
        "description": doc.description,
        "brand": doc.brand or None,
        "category_path": prefixes,
        "category": prefixes[-1] if prefixes else None,
        "category_names": list(doc.category_path),
        "category_text": " ".join(doc.category_path),
        "price": float(doc.price),
        "price_exact": str(doc.price),
        "currency": doc.currency,
        "rating": doc.rating,
        "rating_sort": -1.0 if doc.rating is None else float(doc.rating),
        "in_stock": doc.in_stock,
        "warehouses": list(doc.warehouses),
        "popularity": float(doc.popularity),
        "created_at_ms": int(doc.created_at_ms),
        "suggest_title": {
            "input": [" ".join(words[i:]) for i in range(min(len(words), TITLE_SUFFIX_WORDS))] or [doc.title],
            "weight": weight,
        },
    }
    if doc.brand:
        source["suggest_brand"] = {"input": [doc.brand], "weight": weight}
    if doc.category_path:
        source["suggest_category"] = {"input": [p for p in doc.category_path if p.strip()], "weight": weight}
    for level, prefix in enumerate(prefixes[:MAX_CATEGORY_DEPTH], start=1):
        source[f"cat_lvl_{level}"] = prefix
    return source


def from_source(source: dict[str, Any]) -> SearchDocument:
    return SearchDocument(
        product_id=source["product_id"],
        revision=int(source["revision"]),
        supplier_id=source.get("supplier_id") or "",
        sku=source.get("sku") or "",
        title=source.get("title") or "",
        description=source.get("description") or "",
        brand=source.get("brand") or "",
        category_path=tuple(source.get("category_names") or ()),
        price=Decimal(source.get("price_exact") or str(source.get("price") or 0)),
        currency=source.get("currency") or "INR",
        rating=source.get("rating"),
        in_stock=bool(source.get("in_stock", True)),
        warehouses=tuple(source.get("warehouses") or ()),
        popularity=float(source.get("popularity") or 0.0),
        created_at_ms=int(source.get("created_at_ms") or 0),
    )


def tombstone(product_id: str, revision: int) -> dict[str, Any]:
    return {"product_id": product_id, "live": False, "revision": revision}
