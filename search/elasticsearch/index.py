"""``ElasticsearchSearchIndex``: the port on Elasticsearch, via ``elasticsearch[async]``.

* The live index sits behind the alias ``<name>``; a rebuild fills ``<name>-<timestamp>`` and swaps
  the alias in one ``_aliases`` call, so searches never see a half-built index.
* Writes use external versioning on the event revision: a stale or repeated event gets a 409 and is
  skipped (counted, not an error). A delete writes a versioned tombstone document rather than
  removing the document, so an older upsert arriving after a delete still loses, however late
  (Elasticsearch forgets real delete versions after ``gc_deletes``).
* Only documented APIs: works on Elasticsearch 8/9 and on the noida-db emulator used in tests.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from elasticsearch import AsyncElasticsearch, helpers
from elasticsearch import exceptions as es_errors

from search.analysis import merge_suggestions, prefix_fuzziness, query_words, rank_fuzzy_completions
from search.elasticsearch.mapping import from_source, index_mappings, index_settings, to_source, tombstone
from search.elasticsearch.queries import LIVE, build_search_body, by_score, facets_from, relevance_offset
from search.port import Hit, InvalidQuery, SearchDocument, SearchIndexError, SearchQuery, SearchResult


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
        response = await self.client.count(index=self.target, query=LIVE)
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
                "_source": tombstone(product_id, revision),
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
        relevance = by_score(query)
        start = relevance_offset(query) if relevance else 0
        hits = [
            _hit(raw, position if relevance else None)
            for position, raw in enumerate(response["hits"]["hits"], start=start)
        ]
        facets = facets_from(response.get("aggregations") or {}, query) if query.with_facets else {}
        return SearchResult(hits=hits, total=int(response["hits"]["total"]["value"]), facets=facets)

    async def correct(self, text: str) -> str | None:
        """The term suggester on the unstemmed title words: for each word the index does not hold
        (``suggest_mode: missing``), its best option (similarity, then frequency)."""
        typed = query_words(text)
        if not typed:
            return None
        spec = {"field": "title.raw", "suggest_mode": "missing", "max_edits": 2, "size": 1}
        suggest = {"fix": {"text": " ".join(typed), "term": spec}}
        response = await self.client.search(index=self.target, suggest=suggest, size=0)
        fixed = list(typed)
        for entry in (response.get("suggest") or {}).get("fix") or []:
            options = entry.get("options") or []
            word = str(entry.get("text") or "")
            if options and word in fixed and len(word) >= 3:
                fixed[fixed.index(word)] = str(options[0]["text"])
        return " ".join(fixed) if fixed != typed else None

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
            near = (
                options("title_fuzzy", True)
                + options("brand_fuzzy", False)
                + options("category_fuzzy", False)
            )
            titles += rank_fuzzy_completions(typed, near)
        return merge_suggestions(brands, categories, titles, limit)


def _hit(raw: dict[str, Any], position: int | None) -> Hit:
    """A hit of a search response; a relevance hit's cursor ends with its position (``position``)."""
    sort = tuple(raw.get("sort") or ())
    return Hit(
        document=from_source(raw["_source"]),
        score=float(raw.get("_score") or 0.0),
        sort_values=sort if position is None else (*sort, position),
        highlights={field: list(fragments) for field, fragments in (raw.get("highlight") or {}).items()},
    )
