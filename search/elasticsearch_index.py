"""Elasticsearch adapter of the search-index port (``http(s)://HOST:PORT``), via ``elasticsearch[async]``.

* An index template (``<name>-template`` for ``<name>-*``) carries the analyzers: lowercase +
  asciifolding, light English stemming, an edge-n-gram autocomplete sub-field, and a search-time
  synonym filter whose rules come inline from ``search/analysis/synonyms.txt`` (no file to deploy
  on the servers; editing synonyms needs no reindex).
* The live index sits behind the alias ``<name>``; a rebuild fills ``<name>-<timestamp>`` and swaps
  the alias in one ``_aliases`` call, so searches never see a half-built index.
* Writes use external versioning on the event revision: a stale or repeated event gets a 409 and is
  skipped (counted, not an error). A delete writes a versioned tombstone document rather than
  removing the document, so an older upsert arriving after a delete still loses, however late
  (Elasticsearch forgets real delete versions after ``gc_deletes``).
* Only documented APIs: works on Elasticsearch 8/9 and on the noida-db emulator used in tests
  (which cannot sort on ``_id``, hence the ``product_id`` keyword tiebreaker).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from elasticsearch import AsyncElasticsearch, helpers
from elasticsearch import exceptions as es_errors

from search.analysis import (
    MINIMUM_SHOULD_MATCH,
    auto_fuzziness,
    category_prefixes,
    merge_suggestions,
    prefix_fuzziness,
    query_words,
    read_synonym_rules,
)
from search.port import (
    DEFAULT_PRICE_RANGES,
    MAX_CATEGORY_DEPTH,
    MAX_RESULT_WINDOW,
    FacetBucket,
    Hit,
    InvalidQuery,
    SearchDocument,
    SearchIndexError,
    SearchQuery,
    SearchResult,
    Sort,
    category_key,
)

TEXT_FIELDS = ["title^3", "brand.text^2", "description", "category_text"]
PHRASE_BOOST = 2.0
_TITLE_SUFFIX_WORDS = 4  # completion inputs: the title and the title from each of its first words on
_SOURCE_EXCLUDES = ["suggest_title", "suggest_brand", "suggest_category", "category_text"]


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
            }
        ),
        "description": _text(),
        "brand": {"type": "keyword", "fields": {"text": _text()}},
        "category_path": keyword,  # every path prefix: hierarchical filter
        "category": keyword,  # the full path
        "category_names": source_only,
        "category_text": _text(),
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
            "input": [" ".join(words[i:]) for i in range(min(len(words), _TITLE_SUFFIX_WORDS))]
            or [doc.title],
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


def _tombstone(product_id: str, revision: int) -> dict[str, Any]:
    return {"product_id": product_id, "live": False, "revision": revision}


_LIVE = {"term": {"live": True}}


class ElasticsearchSearchIndex:
    """``SearchIndex`` and ``IndexRebuild`` on Elasticsearch; ``name`` is the alias (and prefix)."""

    stages_writes = False  # each bulk request is durable when it returns

    def __init__(
        self,
        hosts: str | list[str] | None = None,
        name: str = "products",
        *,
        client: AsyncElasticsearch | None = None,
        physical_index: str | None = None,
        chunk_size: int = 1000,
        request_timeout: float = 30.0,
    ) -> None:
        if client is None and hosts is None:
            raise ValueError("give hosts or a client")
        self.client = client or AsyncElasticsearch(
            hosts, request_timeout=request_timeout, retry_on_timeout=True
        )
        self._owns_client = client is None
        self.name = name
        self.physical_index = physical_index  # set on a rebuild target: not behind the alias yet
        self.chunk_size = chunk_size
        self.stale_skipped = 0  # writes skipped as stale or duplicate (observability)

    @property
    def target(self) -> str:
        return self.physical_index or self.name

    @property
    def template_name(self) -> str:
        return f"{self.name}-template"

    def _new_index_name(self) -> str:
        return (
            f"{self.name}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{time.time_ns() % 1_000_000_000:09d}"
        )

    # -- lifecycle --------------------------------------------------------------------------------

    async def _put_template(self) -> None:
        await self.client.indices.put_index_template(
            name=self.template_name,
            index_patterns=[f"{self.name}-*"],
            template={"settings": index_settings(), "mappings": index_mappings()},
            priority=200,
        )

    async def ensure_index(self) -> None:
        try:
            await self._put_template()
            if self.physical_index is not None:
                if not await self.client.indices.exists(index=self.physical_index):
                    await self.client.indices.create(index=self.physical_index)
                return
            if await self.client.indices.exists_alias(name=self.name):
                return
            if await self.client.indices.exists(index=self.name):
                raise SearchIndexError(
                    f"{self.name!r} is a concrete index, expected an alias; delete it or rename"
                )
            await self.client.indices.create(index=self._new_index_name(), aliases={self.name: {}})
        except es_errors.TransportError as exc:
            raise SearchIndexError(f"elasticsearch unreachable: {exc}") from exc

    async def begin_rebuild(self) -> ElasticsearchSearchIndex:
        await self._put_template()
        fresh = ElasticsearchSearchIndex(
            client=self.client,
            name=self.name,
            physical_index=self._new_index_name(),
            chunk_size=self.chunk_size,
        )
        await fresh.ensure_index()
        return fresh

    async def finish_rebuild(self, new_index: Any) -> None:
        if not isinstance(new_index, ElasticsearchSearchIndex) or new_index.physical_index is None:
            raise TypeError("finish_rebuild takes the index returned by begin_rebuild")
        new = new_index.physical_index
        await self.client.indices.refresh(index=new)
        current = await self.client.options(ignore_status=404).indices.get_alias(name=self.name)
        old = [index for index in (current.body or {}) if index != new and index not in ("error", "status")]
        actions: list[dict[str, Any]] = [{"remove": {"index": index, "alias": self.name}} for index in old]
        actions.append({"add": {"index": new, "alias": self.name}})
        await self.client.indices.update_aliases(actions=actions)  # one call: atomic swap
        for index in old:
            await self.client.options(ignore_status=404).indices.delete(index=index)

    async def close(self) -> None:
        if self._owns_client:
            await self.client.close()

    async def ping(self) -> None:
        try:
            await self.client.info()
        except es_errors.TransportError as exc:
            raise SearchIndexError(f"elasticsearch unreachable: {exc}") from exc

    async def commit_staged(self) -> None:
        """Nothing is staged: bulk writes are durable as they return."""

    async def refresh(self) -> None:
        await self.client.indices.refresh(index=self.target)

    async def count(self) -> int:
        response = await self.client.count(index=self.target, query=_LIVE)
        return int(response["count"])

    # -- writes -----------------------------------------------------------------------------------

    async def _bulk(self, actions: list[dict[str, Any]], *, missing_ok: bool = False) -> int:
        """Run versioned bulk actions; 409s are stale writes (skipped and counted), others raise."""
        if not actions:
            return 0
        try:
            written, errors = await helpers.async_bulk(
                self.client,
                actions,
                chunk_size=self.chunk_size,
                max_chunk_bytes=50 * 1024 * 1024,
                raise_on_error=False,
                max_retries=3,  # 429s from a busy cluster, with backoff
                initial_backoff=1,
            )
        except es_errors.TransportError as exc:
            raise SearchIndexError(f"bulk write failed: {exc}") from exc
        failures = []
        for error in errors if isinstance(errors, list) else []:
            info = next(iter(error.values()))
            status = info.get("status")
            if status == 409:
                self.stale_skipped += 1
            elif status == 404 and missing_ok:
                continue
            else:
                failures.append(info)
        if failures:
            sample = failures[0].get("error") or failures[0]
            raise SearchIndexError(f"{len(failures)} search index writes failed, e.g. {sample}")
        return int(written)

    async def upsert(self, documents: Sequence[SearchDocument], *, commit: bool = True) -> int:
        del commit  # every bulk write is durable as it returns: nothing to stage
        newest: dict[str, SearchDocument] = {}
        for doc in documents:  # a batch may repeat a product: only its newest revision can win
            seen = newest.get(doc.product_id)
            if seen is None or doc.revision > seen.revision:
                newest[doc.product_id] = doc
        self.stale_skipped += len(documents) - len(newest)
        actions = [
            {
                "_op_type": "index",
                "_index": self.target,
                "_id": doc.product_id,
                "version": doc.revision,
                "version_type": "external",
                "_source": to_source(doc),
            }
            for doc in newest.values()
        ]
        return await self._bulk(actions)

    async def delete(self, items: Sequence[tuple[str, int]], *, commit: bool = True) -> int:
        del commit  # every bulk write is durable as it returns: nothing to stage
        newest: dict[str, int] = {}
        for product_id, revision in items:
            newest[product_id] = max(revision, newest.get(product_id, revision))
        self.stale_skipped += len(items) - len(newest)
        actions = [
            {
                "_op_type": "index",
                "_index": self.target,
                "_id": product_id,
                "version": revision,
                "version_type": "external",
                "_source": _tombstone(product_id, revision),
            }
            for product_id, revision in newest.items()
        ]
        return await self._bulk(actions)

    async def set_stock_flags(self, items: Sequence[tuple[str, bool]], *, commit: bool = True) -> None:
        """Rewrite the flag at the document's own version (``external_gte``).

        A partial update would bump the internal version and make the next catalog revision look
        stale; re-indexing at the same version keeps the revision sequence intact. A newer revision
        written in between wins (409, skipped): it was built with the current stock state.
        """
        del commit  # durable as it returns
        wanted = dict(items)
        if not wanted:
            return
        response = await self.client.mget(index=self.target, ids=list(wanted))
        actions = []
        for found in response["docs"]:
            source = found.get("_source")
            if not found.get("found") or not source or not source.get("live"):
                continue
            flag = wanted[found["_id"]]
            if bool(source.get("in_stock")) == flag:
                continue
            source["in_stock"] = flag
            actions.append(
                {
                    "_op_type": "index",
                    "_index": found["_index"],
                    "_id": found["_id"],
                    "version": found["_version"],
                    "version_type": "external_gte",
                    "_source": source,
                }
            )
        await self._bulk(actions)

    # -- reads ------------------------------------------------------------------------------------

    async def get(self, product_ids: Sequence[str]) -> list[SearchDocument]:
        if not product_ids:
            return []
        response = await self.client.mget(index=self.target, ids=list(dict.fromkeys(product_ids)))
        return [
            from_source(d["_source"])
            for d in response["docs"]
            if d.get("found") and d.get("_source", {}).get("live")
        ]

    async def search(self, query: SearchQuery) -> SearchResult:
        body = build_search_body(query)
        try:
            response = await self.client.search(index=self.target, **body)
        except es_errors.BadRequestError as exc:
            raise InvalidQuery(f"search rejected: {exc.message}") from exc
        except es_errors.TransportError as exc:
            raise SearchIndexError(f"elasticsearch unreachable: {exc}") from exc
        hits = []
        relevance = _by_score(query)
        start = _relevance_offset(query) if relevance else 0
        for position, raw in enumerate(response["hits"]["hits"], start=start):
            highlights = {k: list(v) for k, v in (raw.get("highlight") or {}).items()}
            hits.append(
                Hit(
                    document=from_source(raw["_source"]),
                    score=float(raw.get("_score") or 0.0),
                    sort_values=(*(raw.get("sort") or ()), position)
                    if relevance
                    else tuple(raw.get("sort") or ()),
                    highlights=highlights,
                )
            )
        facets = _facets(response.get("aggregations") or {}, query) if query.with_facets else {}
        return SearchResult(hits=hits, total=int(response["hits"]["total"]["value"]), facets=facets)

    async def suggest(self, prefix: str, limit: int = 10) -> list[str]:
        typed = " ".join(query_words(prefix))
        if not typed or limit <= 0:
            return []
        fuzziness = prefix_fuzziness(typed.split()[-1])
        suggesters: dict[str, Any] = {}
        for kind in ("title", "brand", "category"):
            spec: dict[str, Any] = {"field": f"suggest_{kind}", "size": limit, "skip_duplicates": True}
            suggesters[kind] = {"prefix": typed, "completion": spec}
            if fuzziness:
                fuzzy = {**spec, "fuzzy": {"fuzziness": fuzziness}}
                suggesters[f"{kind}_fuzzy"] = {"prefix": typed, "completion": fuzzy}
        response = await self.client.search(
            index=self.target, suggest=suggesters, source_includes=["title"], size=0
        )
        found = response.get("suggest") or {}

        def options(name: str, title: bool) -> list[str]:
            out = []
            for entry in found.get(name) or []:
                for option in entry.get("options") or []:
                    text = (option.get("_source") or {}).get("title") if title else None
                    out.append(str(text or option.get("text") or ""))
            return [o for o in out if o]

        brands, categories, titles = (
            options("brand", False),
            options("category", False),
            options("title", True),
        )
        if len(brands) + len(categories) + len(titles) < min(3, limit):
            titles += options("title_fuzzy", True)
            brands += options("brand_fuzzy", False)
            categories += options("category_fuzzy", False)
        return merge_suggestions(brands, categories, titles, limit)


def _validate(query: SearchQuery) -> None:
    if query.limit < 0 or query.offset < 0:
        raise InvalidQuery("limit and offset must not be negative")
    if query.search_after is None and query.offset + query.limit > MAX_RESULT_WINDOW:
        raise InvalidQuery(
            f"offset + limit must be at most {MAX_RESULT_WINDOW}; page deeper with search_after"
        )
    if query.search_after is not None:
        after = query.search_after
        size = 3 if _by_score(query) else 2
        if (
            len(after) != size
            or isinstance(after[0], (str, bool))
            or not isinstance(after[1], str)
            or (size == 3 and (not isinstance(after[2], int) or isinstance(after[2], bool) or after[2] < 0))
        ):
            raise InvalidQuery("search_after must be the sort_values of a hit from the same sort")
        if size == 3 and int(after[2]) + 1 + query.limit > MAX_RESULT_WINDOW:
            raise InvalidQuery(f"relevance results are paged up to {MAX_RESULT_WINDOW}; refine the query")


def _by_score(query: SearchQuery) -> bool:
    return query.sort is Sort.RELEVANCE and bool(query_words(query.text))


def _relevance_offset(query: SearchQuery) -> int:
    """Relevance pages continue by position: score-based search_after is not portable (the
    noida-db emulator never advances past equal scores), and relevance pages rarely go deep."""
    if query.search_after is not None:
        return int(query.search_after[2]) + 1
    return query.offset


def _sort(query: SearchQuery) -> list[Any]:
    tiebreak = {"product_id": "asc"}
    if query.sort is Sort.PRICE_ASC:
        return [{"price": "asc"}, tiebreak]
    if query.sort is Sort.PRICE_DESC:
        return [{"price": "desc"}, tiebreak]
    if query.sort is Sort.RATING:
        return [{"rating_sort": "desc"}, tiebreak]
    if query.sort is Sort.NEWEST:
        return [{"created_at_ms": "desc"}, tiebreak]
    if query_words(query.text):
        return ["_score", tiebreak]
    return [{"popularity": "desc"}, tiebreak]


def _filters(query: SearchQuery) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    must: list[dict[str, Any]] = [_LIVE]
    must_not: list[dict[str, Any]] = []
    if query.category:
        must.append({"term": {"category_path": category_key(query.category)}})
    if query.brands:
        must.append({"terms": {"brand": list(query.brands)}})
    if query.price_min is not None or query.price_max is not None:
        bounds: dict[str, float] = {}
        if query.price_min is not None:
            bounds["gte"] = float(query.price_min)
        if query.price_max is not None:
            bounds["lte"] = float(query.price_max)
        must.append({"range": {"price": bounds}})
    if query.rating_min is not None:
        must.append({"range": {"rating": {"gte": float(query.rating_min)}}})
    if query.in_stock_only:
        must.append({"term": {"in_stock": True}})
    if query.warehouses is not None:
        must.append({"terms": {"warehouses": list(query.warehouses)}})
    if query.exclude_ids:
        must_not.append({"terms": {"product_id": list(query.exclude_ids)}})
    return must, must_not


def _text_query(text: str) -> dict[str, Any] | None:
    words = query_words(text)
    if not words:
        return None
    cleaned = " ".join(words)
    match: dict[str, Any] = {
        "multi_match": {
            "query": cleaned,
            "fields": TEXT_FIELDS,
            "type": "best_fields",
            "fuzziness": "AUTO" if any(auto_fuzziness(w) for w in words) else 0,
            "minimum_should_match": MINIMUM_SHOULD_MATCH,
        }
    }
    if len(words) == 1:
        return match
    phrase = {"match_phrase": {"title": {"query": cleaned, "slop": 1, "boost": PHRASE_BOOST}}}
    return {"bool": {"must": [match], "should": [phrase]}}


def _facet_level(query: SearchQuery) -> int:
    return min(len([p for p in query.category if p.strip()]) + 1, MAX_CATEGORY_DEPTH)


def build_search_body(query: SearchQuery) -> dict[str, Any]:
    """The keyword arguments of ``AsyncElasticsearch.search`` for a port query (pure; unit-tested)."""
    _validate(query)
    must, must_not = _filters(query)
    text = _text_query(query.text)
    bool_query: dict[str, Any] = {"filter": must}
    if text is not None:
        bool_query["must"] = [text]
    if must_not:
        bool_query["must_not"] = must_not
    body: dict[str, Any] = {
        "query": {"bool": bool_query},
        "sort": _sort(query),
        "size": query.limit,
        "track_total_hits": True,
        "source_excludes": _SOURCE_EXCLUDES,
    }
    if _by_score(query):
        if _relevance_offset(query):
            body["from_"] = _relevance_offset(query)
    elif query.search_after is not None:
        body["search_after"] = list(query.search_after)
    elif query.offset:
        body["from_"] = query.offset
    if query.with_facets:
        size = max(1, query.facet_size)
        ranges = []
        for bucket in DEFAULT_PRICE_RANGES:
            spec: dict[str, Any] = {"key": bucket.key}
            if bucket.low is not None:
                spec["from"] = float(bucket.low)
            if bucket.high is not None:
                spec["to"] = float(bucket.high)
            ranges.append(spec)
        body["aggs"] = {
            "brand": {"terms": {"field": "brand", "size": size}},
            "category": {"terms": {"field": f"cat_lvl_{_facet_level(query)}", "size": size}},
            "price": {"range": {"field": "price", "ranges": ranges}},
        }
    if query.with_highlights and text is not None:
        body["highlight"] = {
            "pre_tags": ["<em>"],
            "post_tags": ["</em>"],
            "encoder": "html",
            "fields": {
                "title": {"number_of_fragments": 0},
                "description": {"fragment_size": 150, "number_of_fragments": 1},
            },
        }
    return body


def _facets(aggs: dict[str, Any], query: SearchQuery) -> dict[str, list[FacetBucket]]:
    facets: dict[str, list[FacetBucket]] = {}
    for name in ("category", "brand"):
        buckets = [
            FacetBucket(str(b["key"]), int(b["doc_count"])) for b in (aggs.get(name) or {}).get("buckets", [])
        ]
        buckets.sort(key=lambda b: (-b.count, b.value))
        facets[name] = buckets
    price = (aggs.get("price") or {}).get("buckets", [])
    by_key = {str(b.get("key")): int(b["doc_count"]) for b in price}
    facets["price"] = [FacetBucket(r.key, by_key.get(r.key, 0)) for r in DEFAULT_PRICE_RANGES]
    return facets
