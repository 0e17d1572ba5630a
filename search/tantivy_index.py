"""Tantivy adapter of the search-index port: the embedded default (``tantivy:///PATH``).

Layout under PATH: one directory per physical index (``<name>-<timestamp>``) and a pointer file
``<name>.current`` naming the live one. A rebuild fills a fresh directory and swaps the pointer
atomically (``os.replace``); every process that serves searches follows the pointer, so searches keep
answering from the old directory until the swap and from the new one right after.

Behaviour matches the Elasticsearch adapter:

* external versioning: a revision map (product hash -> newest revision, deletes included as
  tombstone documents) is loaded from the index at open; writes not newer than it are skipped;
* text: per-field ``best_fields`` matching with AUTO fuzziness, synonyms from
  ``search/analysis/synonyms.txt`` expanded at query time, a title phrase boost;
* sorts are exact total orders: relevance ties and field ties break on a 64-bit product hash, and
  ``search_after`` becomes a range filter on (sort field, hash), so paging never repeats or skips;
* facets come from Tantivy aggregations over the fast fields (exact counts), or, when a relevance
  search's fetch already holds every match, are counted over those documents (the same counts).

Tantivy is synchronous. Writes run in worker threads; one writer per index, guarded by a lock, commits
at the end of every write call (so a projector that commits its offsets afterwards loses nothing), or,
with ``commit=False``, at the next ``commit_staged`` (a projector then commits its offsets after that).
Reads (search, suggest, get) run inline on the event loop. tantivy-py 0.27 does release the GIL inside
``Searcher.search`` and ``aggregate`` (two threads searching run 2x as fast as one), but a search also
spends about half its CPU in Python (query building, documents, highlights), and serving searches from a
pool of 1 or 2 threads measured worse here: +15-45% server CPU per uncached search (GIL hand-offs
between the loop and the workers) and no more throughput on 2 shared cores (``loadtest.bench_search
--no-cache``: 304 req/s inline vs 221 and 236 with 1 and 2 threads, same data, back to back).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import threading
import time
import unicodedata
import weakref
from bisect import bisect_right
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, cast

import msgspec
import tantivy

from search.analysis import (
    auto_fuzziness,
    category_prefixes,
    default_synonyms,
    merge_suggestions,
    minimum_should_match,
    prefix_fuzziness,
    query_words,
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
from search.versions import BucketKeys, DocumentMemo, FacetTable, count_facets
from search.vocabulary import Vocabulary, VocabularyTracker

TEXT_ANALYZER = "emp_text"  # lowercase + ascii folding + English stemming
_SEP = "\x1f"  # suggestion terms are "<folded text>\x1f<display text>": prefix-searchable, displayable

# field -> boost, as in the Elasticsearch adapter's multi_match
TEXT_FIELDS: dict[str, float] = {"title": 3.0, "brand_text": 2.0, "description": 1.0, "category_text": 1.0}
PHRASE_BOOST = 2.0
# A first relevance page fetches this many hits; when that is every match, its facets are counted over
# them (``versions.FacetTable``) instead of a second pass over the index. Counting costs ~1 us per match in
# Python, the aggregation ~0.45 ms per query in Tantivy: past a few hundred matches the index is faster.
FACET_FETCH = 256
FUZZY_WEIGHT = 0.8  # a fuzzy match scores a little below the exact term

# sort -> (fast field, descending?)
_FIELD_SORTS: dict[Sort, tuple[str, bool]] = {
    Sort.PRICE_ASC: ("price", False),
    Sort.PRICE_DESC: ("price", True),
    Sort.RATING: ("rating_sort", True),
    Sort.NEWEST: ("created_at_ms", True),
}
_POPULARITY_SORT = ("popularity", True)
_INDEX_OPTION = {"title": "position"}  # "relevance" without text: most popular first

_encoder = msgspec.msgpack.Encoder(decimal_format="string")
_decoder = msgspec.msgpack.Decoder(SearchDocument)


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


def _schema() -> tantivy.Schema:
    """Indexing cost grows with the number of fields, so each field earns its place:

    * the whole document is one stored msgpack blob (decoded on read), nothing else is stored;
    * ``pid_hash`` is the product's id term (deletes, lookups, ``exclude_ids``) and sort tiebreaker;
    * numeric fields are fast-only: Tantivy runs range filters and sorts on the columnar values;
    * one multi-valued ``category`` keyword holds every path prefix tagged with its level
      (``category_term``): it serves the hierarchical filter and every facet level;
    * one ``suggest`` keyword holds brand and category names for completion, tagged by kind.
    """
    sb = tantivy.SchemaBuilder()
    sb.add_integer_field("pid_hash", indexed=True, fast=True)
    sb.add_boolean_field("live", indexed=True)
    sb.add_unsigned_field("revision", fast=True)
    sb.add_bytes_field("doc", stored=True)
    for name in TEXT_FIELDS:
        # Only the title needs positions (phrase boost, phrase-prefix completion); the rest keep
        # frequencies for scoring, which halves their indexing cost.
        sb.add_text_field(name, tokenizer_name=TEXT_ANALYZER, index_option=_INDEX_OPTION.get(name, "freq"))
    sb.add_text_field("brand", fast=True, tokenizer_name="raw")
    sb.add_text_field("category", fast=True, tokenizer_name="raw")
    sb.add_text_field("warehouses", tokenizer_name="raw")
    sb.add_boolean_field("in_stock", indexed=True)
    for name in ("price", "rating", "rating_sort", "popularity"):
        sb.add_float_field(name, fast=True)
    sb.add_integer_field("created_at_ms", fast=True)
    sb.add_float_field("tiebreak", fast=True)
    sb.add_text_field("suggest", tokenizer_name="raw")
    return sb.build()


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


def _register_analyzers(index: tantivy.Index) -> None:
    index.register_tokenizer(TEXT_ANALYZER, _text_analyzer())


_TEXT = _text_analyzer()


TIEBREAK_SPREAD = 1e-3


def tiebreak_weight(key: int) -> float:
    """A per-product weight in [0, 1e-3) for ``weight_by_field``: it scales scores by at most 0.07%
    (``log2(2 + w)``), which splits the large groups of equal scores that fuzzy (constant-score) matches
    make, so a relevance page is settled from the first fetch instead of sorting every tied hit."""
    return (key >> 43) / (1 << 20) * TIEBREAK_SPREAD


def category_term(level: int, key: str) -> str:
    """The ``category`` keyword of a path prefix at a level: (2, "Fashion>Men") -> "2\x1fFashion>Men"."""
    return f"{level}{_SEP}{key}"


def suggest_term(kind: str, name: str) -> str:
    """A ``suggest`` keyword: kind ("b" brand, "c" category), folded name (prefix-searchable), name."""
    return f"{kind}{_SEP}{fold(name)}{_SEP}{name.strip()}"


@lru_cache(maxsize=1 << 16)
def _category_fields(path: tuple[str, ...]) -> tuple[str, list[str], list[str]]:
    """(category_text, category terms, suggest terms) of a path: catalogs repeat a few hundred paths,
    so this is computed once per path, not per document."""
    prefixes = category_prefixes(path)
    terms = [category_term(i, p) for i, p in enumerate(prefixes, start=1)]
    return " ".join(path), terms, [suggest_term("c", p) for p in path if p.strip()]


@lru_cache(maxsize=1 << 16)
def _brand_suggest(brand: str) -> str:
    return suggest_term("b", brand)


_MULTI_VALUED = frozenset({"category", "suggest", "warehouses"})


def _build(doc: SearchDocument, key: int, blob: bytes) -> tantivy.Document:
    """The Tantivy document of one live product. Typed ``add_*`` calls: ``Document.from_dict`` of a
    field dict costs about twice as much per product (it looks every value's type up in the schema)."""
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
        document.add_text("suggest", _brand_suggest(doc.brand))
    if doc.category_path:
        text, terms, names = _category_fields(doc.category_path)
        document.add_text("category_text", text)
        if terms:
            for term in terms:
                document.add_text("category", term)
            for name in names:
                document.add_text("suggest", name)
    for warehouse in doc.warehouses:
        document.add_text("warehouses", warehouse)
    return document


def _fields_of(doc: SearchDocument, key: int, blob: bytes) -> dict[str, Any]:
    """The field values ``_document`` writes for one live product (single-valued fields unwrapped)."""
    values = _build(doc, key, blob).to_dict()
    return {name: value if name in _MULTI_VALUED else value[0] for name, value in values.items()}


def _document(doc: SearchDocument, key: int) -> tantivy.Document:
    return _build(doc, key, _encoder.encode(doc))


def _load(searcher: tantivy.Searcher, address: Any) -> SearchDocument:
    blob = searcher.doc(address).get_first("doc")
    return _decoder.decode(cast(bytes, blob))


def _count(result: tantivy.SearchResult) -> int:
    return int(getattr(result, "count", 0) or 0)


def _words(tokens: Sequence[str]) -> list[str | tuple[int, str]]:
    return list(tokens)


def _tombstone(key: int, revision: int) -> tantivy.Document:
    return tantivy.Document.from_dict({"pid_hash": key, "live": False, "revision": revision}, SCHEMA)


class _Engine:
    """One physical index directory: its Tantivy index, lazily opened writer and revision map."""

    def __init__(self, path: Path, *, heap_bytes: int, threads: int) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        try:
            self.index = tantivy.Index(SCHEMA, path=str(path), reuse=True)
        except ValueError as exc:  # written by an older version of this adapter's schema
            raise SearchIndexError(
                f"search index {path} has an older schema ({exc}); run `emporium rebuild search`"
            ) from exc
        _register_analyzers(self.index)
        self.index.config_reader(reload_policy="commit")
        self._heap_bytes = heap_bytes
        self._threads = threads
        self._writer: tantivy.IndexWriter | None = None
        self.write_lock = threading.Lock()
        self._revisions: dict[int, int] | None = None
        # Written but not committed yet (product hash -> document, None for a tombstone): what
        # ``set_stock_flags`` must start from, since searchers only see committed documents.
        self.staged: dict[int, SearchDocument | None] = {}
        self.live_query = tantivy.Query.term_query(SCHEMA, "live", True)
        self.facets = FacetTable(lambda path: _category_fields(path)[1])
        self.documents = DocumentMemo()

    @property
    def revisions(self) -> dict[int, int]:
        """Newest revision per product hash (tombstones included); loaded with the writer, so it also
        covers what another process wrote while it held the directory lock."""
        if self._revisions is None:
            self.writer  # noqa: B018 -- opening the writer loads the map
            if self._revisions is None:  # dropped by a failed commit
                self._revisions = self._load_revisions()
        return self._revisions

    def _load_revisions(self) -> dict[int, int]:
        self.index.reload()
        searcher = self.index.searcher()
        if searcher.num_docs == 0:
            return {}
        hits = searcher.search(tantivy.Query.all_query(), limit=searcher.num_docs, count=False).hits
        addresses = [address for _, address in hits]
        hashes = searcher.fast_field_values("pid_hash", addresses)
        revisions = searcher.fast_field_values("revision", addresses)
        table: dict[int, int] = {}
        for key, revision in zip(hashes, revisions, strict=True):
            if key is not None and revision is not None and revision > table.get(int(key), -1):
                table[int(key)] = int(revision)
        return table

    @property
    def writer(self) -> tantivy.IndexWriter:
        if self._writer is None:
            try:
                self._writer = self.index.writer(heap_size=self._heap_bytes, num_threads=self._threads)
            except ValueError as exc:  # the directory lock is held by another writer
                raise RuntimeError(f"search index {self.path} is being written by another process") from exc
            self._revisions = self._load_revisions()
        return self._writer

    def stage(self, key: int, document: SearchDocument | None, revision: int | None) -> None:
        """Record a write added to the writer (``revision`` None: a stock flag, not a new revision)."""
        self.staged[key] = document
        if revision is not None:
            self.revisions[key] = revision

    def commit(self) -> None:
        """Make every staged write durable and searchable; on failure drop them all (the revision map
        is reloaded from the committed index, so the caller's retry writes them again)."""
        try:
            self.writer.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                self.writer.rollback()
            self.staged.clear()
            self._revisions = None  # reloaded from the committed index on next use
            raise
        self.staged.clear()
        self.index.reload()

    def close(self) -> None:
        with self.write_lock:
            if self._writer is not None:
                with contextlib.suppress(Exception):
                    self._writer.wait_merging_threads()
                self._writer = None
                self._revisions = None
                self.staged.clear()


class TantivySearchIndex:
    """``SearchIndex`` and ``IndexRebuild`` over Tantivy directories under ``root``."""

    POINTER_CHECK_SECONDS = 0.2
    stages_writes = True  # a commit per projector batch costs segment flushes and merges

    def __init__(
        self,
        root: Path | str,
        name: str = "products",
        *,
        heap_bytes: int = 128_000_000,
        threads: int = 1,
        _pinned: Path | None = None,
    ) -> None:
        self.root = Path(root)
        self.name = name
        self._heap_bytes = heap_bytes
        self._threads = threads
        self._pinned = _pinned
        self._engine: _Engine | None = None
        self._pointer_seen: str | None = None
        self._pointer_checked = 0.0
        self._switch_lock = threading.Lock()
        self.stale_skipped = 0  # writes skipped as stale or duplicate (observability)
        self._staging: _Engine | None = None  # the engine holding writes staged by ``commit=False``

    # -- index lifecycle ------------------------------------------------------------------------

    @property
    def pointer(self) -> Path:
        return self.root / f"{self.name}.current"

    def _new_dir(self) -> Path:
        return self.root / f"{self.name}-{time.time_ns()}"

    def _read_pointer(self) -> str | None:
        try:
            return self.pointer.read_text().strip() or None
        except FileNotFoundError:
            return None

    def _write_pointer(self, directory: Path) -> None:
        tmp = self.pointer.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(directory.name)
        os.replace(tmp, self.pointer)  # atomic: readers see the old or the new name, never half

    def _current(self) -> _Engine:
        """The engine to use now, following the live pointer (another process may have swapped it)."""
        engine = self._engine
        if self._pinned is not None:
            if engine is None:
                with self._switch_lock:
                    if self._engine is None:
                        self._engine = self._open(self._pinned)
                    engine = self._engine
            return engine
        now = time.monotonic()
        if engine is not None and now - self._pointer_checked < self.POINTER_CHECK_SECONDS:
            return engine
        with self._switch_lock:
            self._pointer_checked = now
            name = self._read_pointer()
            if name is None:
                self.root.mkdir(parents=True, exist_ok=True)
                directory = self._new_dir()
                fresh = self._open(directory)
                self._write_pointer(directory)
                name = directory.name
                old, self._engine = self._engine, fresh
            elif self._engine is None or name != self._pointer_seen:
                old, self._engine = self._engine, self._open(self.root / name)
            else:
                old = None
            self._pointer_seen = name
            if old is not None:
                old.close()
            assert self._engine is not None
            return self._engine

    def _open(self, directory: Path) -> _Engine:
        return _Engine(directory, heap_bytes=self._heap_bytes, threads=self._threads)

    async def ensure_index(self) -> None:
        await asyncio.to_thread(self._current)

    async def begin_rebuild(self) -> TantivySearchIndex:
        """A fresh directory, not behind the pointer: fill it, then ``finish_rebuild``."""
        fresh = TantivySearchIndex(
            self.root, self.name, heap_bytes=self._heap_bytes, threads=self._threads, _pinned=self._new_dir()
        )
        await fresh.ensure_index()
        return fresh

    async def finish_rebuild(self, new_index: Any) -> None:
        if not isinstance(new_index, TantivySearchIndex) or new_index._pinned is None:
            raise TypeError("finish_rebuild takes the index returned by begin_rebuild")
        await asyncio.to_thread(self._swap, new_index)

    def _swap(self, new_index: TantivySearchIndex) -> None:
        new_engine = new_index._current()
        new_engine.close()  # release its writer lock so this process (or the projector) can write
        new_index._engine = None
        with self._switch_lock:
            old_name = self._read_pointer()
            self._write_pointer(new_engine.path)
            old_engine, self._engine = self._engine, self._open(new_engine.path)
            self._pointer_seen = new_engine.path.name
            self._pointer_checked = time.monotonic()
        if old_engine is not None:
            old_engine.close()
        if old_name and old_name != new_engine.path.name:
            # Open searchers (here or in other processes) keep their mmapped files until they finish.
            shutil.rmtree(self.root / old_name, ignore_errors=True)

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await asyncio.to_thread(engine.close)

    async def ping(self) -> None:
        await asyncio.to_thread(lambda: self._current().index.searcher())

    async def refresh(self) -> None:
        def run() -> None:
            engine = self._current()
            with engine.write_lock:
                engine.index.reload()

        await asyncio.to_thread(run)

    async def count(self) -> int:
        def run() -> int:
            engine = self._current()
            return _count(engine.index.searcher().search(engine.live_query, limit=1))

        return await asyncio.to_thread(run)

    # -- writes -----------------------------------------------------------------------------------
    # Each write commits at its end, or with ``commit=False`` leaves its documents staged (added to the
    # writer: later writes here see them, searches do not) until ``commit_staged``, so that a projector
    # can write several polled batches in one Tantivy commit (each commit flushes a segment that merges
    # later rewrite: fewer, larger commits cost less CPU).

    def _engine_for_write(self) -> _Engine:
        """The current engine, never mixing two: writes staged on an engine that a rebuild swapped out
        were dropped with its writer, so the caller is told to write them again."""
        engine = self._current()
        if self._staging is not None and self._staging is not engine:
            self._staging = None
            raise SearchIndexError("the search index was swapped while writes were staged; write them again")
        return engine

    def _finish_write(self, engine: _Engine, commit: bool) -> None:
        """Commit what this call and earlier staged calls wrote, or keep it staged."""
        if not engine.staged:
            return
        if not commit:
            self._staging = engine
            return
        try:
            engine.commit()
        finally:
            self._staging = None

    async def commit_staged(self) -> None:
        """Make the writes staged with ``commit=False`` durable and searchable."""
        if self._staging is not None:
            await asyncio.to_thread(self._commit_staged)

    def _commit_staged(self) -> None:
        engine = self._engine_for_write()
        with engine.write_lock:
            self._finish_write(engine, commit=True)

    async def upsert(self, documents: Sequence[SearchDocument], *, commit: bool = True) -> int:
        if not documents:
            return 0
        return await asyncio.to_thread(self._upsert, documents, commit)

    def _upsert(self, documents: Sequence[SearchDocument], commit: bool) -> int:
        engine = self._engine_for_write()
        with engine.write_lock:
            revisions = engine.revisions
            newest: dict[int, SearchDocument] = {}
            for doc in documents:  # a batch may repeat a product: keep its newest revision
                key = product_hash(doc.product_id)
                seen = newest.get(key)
                if (seen is None or doc.revision > seen.revision) and doc.revision > revisions.get(key, -1):
                    newest[key] = doc
            self.stale_skipped += len(documents) - len(newest)
            if newest:
                writer = engine.writer
                for key, doc in newest.items():
                    if key in revisions:  # the map knows every stored document: new products need no delete
                        writer.delete_documents_by_term("pid_hash", key)
                    writer.add_document(_document(doc, key))
                    engine.stage(key, doc, doc.revision)
            self._finish_write(engine, commit)
            return len(newest)

    async def delete(self, items: Sequence[tuple[str, int]], *, commit: bool = True) -> int:
        if not items:
            return 0
        return await asyncio.to_thread(self._delete, items, commit)

    def _delete(self, items: Sequence[tuple[str, int]], commit: bool) -> int:
        engine = self._engine_for_write()
        with engine.write_lock:
            revisions = engine.revisions
            newest: dict[int, int] = {}
            for product_id, revision in items:
                key = product_hash(product_id)
                if revision > newest.get(key, -1) and revision > revisions.get(key, -1):
                    newest[key] = revision
            self.stale_skipped += len(items) - len(newest)
            if newest:
                writer = engine.writer
                for key, revision in newest.items():
                    if key in revisions:
                        writer.delete_documents_by_term("pid_hash", key)
                    writer.add_document(_tombstone(key, revision))  # remembers the revision
                    engine.stage(key, None, revision)
            self._finish_write(engine, commit)
            return len(newest)

    async def set_stock_flags(self, items: Sequence[tuple[str, bool]], *, commit: bool = True) -> None:
        if items:
            await asyncio.to_thread(self._set_stock_flags, items, commit)

    def _set_stock_flags(self, items: Sequence[tuple[str, bool]], commit: bool) -> None:
        engine = self._engine_for_write()
        with engine.write_lock:
            wanted = dict(items)
            keys = {product_id: product_hash(product_id) for product_id in wanted}
            current: dict[str, SearchDocument] = {}
            committed: list[str] = []
            for product_id, key in keys.items():
                if key in engine.staged:  # newer than what searchers see (None: deleted)
                    if (staged := engine.staged[key]) is not None:
                        current[product_id] = staged
                else:
                    committed.append(product_id)
            if committed:
                current.update((doc.product_id, doc) for doc in self._get(engine, committed))
            changed = [
                msgspec.structs.replace(doc, in_stock=wanted[pid])
                for pid, doc in current.items()
                if doc.in_stock != wanted[pid]
            ]
            if changed:
                writer = engine.writer
                for doc in changed:
                    key = keys[doc.product_id]
                    writer.delete_documents_by_term("pid_hash", key)
                    writer.add_document(_document(doc, key))
                    engine.stage(key, doc, None)
            self._finish_write(engine, commit)

    # -- reads ------------------------------------------------------------------------------------

    async def get(self, product_ids: Sequence[str]) -> list[SearchDocument]:
        if not product_ids:
            return []
        return self._get(self._current(), product_ids)

    @staticmethod
    def _get(engine: _Engine, product_ids: Sequence[str]) -> list[SearchDocument]:
        searcher = engine.index.searcher()
        wanted = dict.fromkeys(product_ids)
        keys = [product_hash(pid) for pid in wanted]
        query = tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Must, tantivy.Query.term_set_query(SCHEMA, "pid_hash", keys)),
                (tantivy.Occur.Must, engine.live_query),
            ]
        )
        hits = searcher.search(query, limit=max(1, len(keys)), count=False).hits
        found: dict[str, SearchDocument] = {}
        for _, address in hits:
            doc = _load(searcher, address)
            found[doc.product_id] = doc  # by id, not hash: a hash collision never returns the wrong product
        return [found[pid] for pid in wanted if pid in found]

    async def search(self, query: SearchQuery) -> SearchResult:
        _validate(query)
        return self._search(query)

    def _search(self, query: SearchQuery) -> SearchResult:
        engine = self._current()
        searcher = engine.index.searcher()
        vocabulary = _vocabulary(engine) if query.text else None
        text_query, highlight_query = _text_queries(query.text, vocabulary)
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = [(tantivy.Occur.Must, engine.live_query)]
        if text_query is not None:
            clauses.append((tantivy.Occur.Must, text_query))
        clauses.extend(_filters(query))
        base = tantivy.Query.boolean_query(clauses)

        facet_aggs = _facet_aggs(query) if query.with_facets else {}
        aggs: dict[str, Any] = {"total": {"value_count": {"field": "pid_hash"}}, **facet_aggs}

        loaded: dict[tuple[int, int], SearchDocument] = {}
        if query.sort is Sort.RELEVANCE and text_query is not None:
            fetch = FACET_FETCH if facet_aggs else 0
            page, total, every = _relevance_page(searcher, base, query, fetch)  # counted: no "total" agg
            if facet_aggs and every is not None:
                # The fetch holds every match: count the facets over those (the same counts as the
                # aggregation, without evaluating the query a second time).
                agg_result = count_facets(_bucket_keys(searcher, engine, every, loaded))
            else:
                agg_result = searcher.aggregate(base, facet_aggs) if facet_aggs else {}
        else:
            field, descending = _FIELD_SORTS.get(query.sort, _POPULARITY_SORT)
            page_query = base
            if query.search_after is not None:
                page_query = tantivy.Query.boolean_query(
                    [
                        (tantivy.Occur.Must, base),
                        (tantivy.Occur.Must, _after_filter(field, descending, query)),
                    ]
                )
            # "from" is applied here, not by Tantivy: its top_hits panics when "from" is past the last hit
            skip = 0 if query.search_after is not None else query.offset
            top = {
                "top_hits": {
                    "size": skip + query.limit,
                    "from": 0,
                    "sort": [{field: "desc" if descending else "asc"}, {"pid_hash": "asc"}],
                    "docvalue_fields": ["pid_hash"],
                }
            }
            if page_query is base:
                agg_result = searcher.aggregate(base, {**aggs, "page": top})
                page_result = agg_result
            else:
                agg_result = searcher.aggregate(base, aggs)
                page_result = searcher.aggregate(page_query, {"page": top})
            total = int(agg_result["total"]["value"] or 0)
            hashes = [int(h["docvalue_fields"]["pid_hash"][0]) for h in page_result["page"]["hits"][skip:]]
            page = [(0.0, key, address) for key, address in _addresses(searcher, engine, hashes)]

        hits = _hits(searcher, engine, page, query, highlight_query, loaded)
        facets = _facets(agg_result, query) if query.with_facets else {}
        return SearchResult(hits=hits, total=total, facets=facets)

    async def suggest(self, prefix: str, limit: int = 10) -> list[str]:
        if not prefix.strip() or limit <= 0:
            return []
        return self._suggest(prefix, limit)

    def _suggest(self, prefix: str, limit: int) -> list[str]:
        """Brand and category names starting with the prefix, then titles containing it as a phrase
        prefix (titles that start with it first); only when that finds little, typo-tolerant prefixes."""
        engine = self._current()
        searcher = engine.index.searcher()
        typed = fold(prefix)
        words = query_words(typed)
        if not words:
            return []

        def names(kind: str) -> list[str]:
            terms = searcher.terms_with_prefix(
                "suggest", f"{kind}{_SEP}{typed}", filter_query=engine.live_query, limit=limit
            )
            return [term.split(_SEP, 2)[-1] for term, _ in terms]

        brands, categories = names("b"), names("c")
        titles = _title_completions(searcher, engine, words, typed, limit, fuzzy=False)
        if len(brands) + len(categories) + len(titles) < min(3, limit) and prefix_fuzziness(words[-1]):
            titles += _title_completions(searcher, engine, words, typed, limit, fuzzy=True)
            brands += _fuzzy_brands(searcher, engine, words[-1], limit)
        return merge_suggestions(brands, categories, titles, limit)


def _prefix_token(word: str) -> str:
    """The indexed (stemmed) form to prefix-match a word being typed: "capsule" -> "capsul"."""
    stemmed = _analyze(word)
    return stemmed[0] if stemmed and len(stemmed[0]) <= len(word) else word


def _title_completions(
    searcher: tantivy.Searcher, engine: _Engine, words: list[str], typed: str, limit: int, *, fuzzy: bool
) -> list[str]:
    head = [t for w in words[:-1] for t in _analyze(w)]
    last = _prefix_token(words[-1])
    clauses: list[tuple[tantivy.Occur, tantivy.Query]] = [(tantivy.Occur.Must, engine.live_query)]
    if fuzzy:
        for token in head:
            distance = auto_fuzziness(token)
            clauses.append(
                (tantivy.Occur.Must, tantivy.Query.fuzzy_term_query(SCHEMA, "title", token, distance))
            )
        near = tantivy.Query.fuzzy_term_query(
            SCHEMA, "title", last, distance=prefix_fuzziness(last), prefix=True
        )
        clauses.append((tantivy.Occur.Must, near))
    else:
        phrase = tantivy.Query.phrase_prefix_query(SCHEMA, "title", _words([*head, last]))
        clauses.append((tantivy.Occur.Must, phrase))
    query = tantivy.Query.boolean_query(clauses)
    hits = searcher.search(query, limit=limit * 5, count=False, order_by_field="popularity").hits
    titles = [_load(searcher, address).title.strip() for _, address in hits]
    titles.sort(key=lambda title: not fold(title).startswith(typed))  # stable: popularity within
    return titles


def _fuzzy_brands(searcher: tantivy.Searcher, engine: _Engine, word: str, limit: int) -> list[str]:
    token = _prefix_token(word)
    if prefix_fuzziness(token) == 0:
        return []
    near = tantivy.Query.fuzzy_term_query(
        SCHEMA, "brand_text", token, distance=prefix_fuzziness(token), prefix=True
    )
    query = tantivy.Query.boolean_query([(tantivy.Occur.Must, engine.live_query), (tantivy.Occur.Must, near)])
    result = searcher.aggregate(query, {"b": {"terms": {"field": "brand", "size": limit}}})
    return [str(b["key"]) for b in result["b"]["buckets"]]


# -- query building (pure, module level so the threads share nothing mutable) -------------------


def _validate(query: SearchQuery) -> None:
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


def _analyze(text: str) -> list[str]:
    return [t for t in _TEXT.analyze(text) if t]


_FIELD_BITS = {field: 1 << bit for bit, field in enumerate(TEXT_FIELDS)}  # a Vocabulary's field masks
_trackers: weakref.WeakKeyDictionary[_Engine, VocabularyTracker] = weakref.WeakKeyDictionary()


def _vocabulary(engine: _Engine) -> Vocabulary | None:
    """The text vocabulary of the engine's index if it covers the index's current content (call it
    after taking the searcher: it then covers that searcher too), else None: fuzzy queries then."""
    tracker = _trackers.get(engine)
    if tracker is None:
        fresh = VocabularyTracker(engine.path, list(TEXT_FIELDS), engine.index.searcher, engine.index.reload)
        tracker = _trackers.setdefault(engine, fresh)
    return tracker.current()


def _unit_query(
    field: str, tokens: list[str], fuzzy: bool, vocabulary: Vocabulary | None = None
) -> tantivy.Query | None:
    """One alternative of a query unit on one field: a phrase, or a word that also matches its typo
    variants (constant-scored a little below the exact term). With a ``vocabulary`` the variants are
    the terms it found within the distance, as plain term queries: the same matches and scores as a
    ``fuzzy_term_query``, without building a Levenshtein automaton per field and per pass."""
    if not tokens:
        return None
    if len(tokens) > 1:
        if field in _INDEX_OPTION:  # positions indexed
            return tantivy.Query.phrase_query(SCHEMA, field, _words(tokens))
        return tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, tantivy.Query.term_query(SCHEMA, field, t)) for t in tokens]
        )
    token = tokens[0]
    exact = tantivy.Query.term_query(SCHEMA, field, token)
    distance = auto_fuzziness(token) if fuzzy else 0
    if distance == 0:
        return exact
    if vocabulary is None:
        near = tantivy.Query.boost_query(
            tantivy.Query.fuzzy_term_query(SCHEMA, field, token, distance=distance), FUZZY_WEIGHT
        )
    else:
        bit = _FIELD_BITS[field]
        terms = [term for term, fields in vocabulary.variants(token, distance) if fields & bit]
        if not terms:  # no term of this field is that near, so neither is the token itself
            return exact
        matches = [tantivy.Query.term_query(SCHEMA, field, term) for term in terms]
        either = matches[0]
        if len(matches) > 1:
            either = tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in matches])
        near = tantivy.Query.const_score_query(either, FUZZY_WEIGHT)
    return tantivy.Query.disjunction_max_query([exact, near])


def _units(text: str) -> list[list[list[str]]]:
    """Query units: each a list of alternatives (analyzed token lists): the word and its synonyms."""
    synonyms = default_synonyms()
    words = query_words(text)
    units: list[list[list[str]]] = []
    i = 0
    while i < len(words):
        pair = " ".join(words[i : i + 2]) if i + 1 < len(words) else None
        if pair and pair in synonyms:
            phrase, i = pair, i + 2
        else:
            phrase, i = words[i], i + 1
        alternatives = [_analyze(phrase)] + [_analyze(s) for s in synonyms.get(phrase, ())]
        alternatives = [a for a in alternatives if a]
        if alternatives:
            units.append(alternatives)
    return units


def _text_queries(
    text: str, vocabulary: Vocabulary | None = None
) -> tuple[tantivy.Query | None, tantivy.Query | None]:
    """(matching query, highlight query). ``best_fields``: the best field's match counts."""
    units = _units(text)
    if not units:
        return None, None
    need = minimum_should_match(len(units))
    per_field = []
    for field, boost in TEXT_FIELDS.items():
        unit_queries = []
        for alternatives in units:
            options = [
                q for q in (_unit_query(field, a, True, vocabulary) for a in alternatives) if q is not None
            ]
            unit_queries.append(
                options[0] if len(options) == 1 else tantivy.Query.disjunction_max_query(options)
            )
        field_query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, q) for q in unit_queries], minimum_number_should_match=need
        )
        per_field.append(tantivy.Query.boost_query(field_query, boost))
    match = tantivy.Query.disjunction_max_query(per_field)
    tokens = [t for alternatives in units for t in alternatives[0]]
    if len(tokens) > 1:
        phrase = tantivy.Query.boost_query(
            tantivy.Query.phrase_query(SCHEMA, "title", _words(tokens), slop=1), PHRASE_BOOST
        )
        match = tantivy.Query.boolean_query([(tantivy.Occur.Must, match), (tantivy.Occur.Should, phrase)])
    highlight_terms = {t for alternatives in units for a in alternatives for t in a}
    highlight = tantivy.Query.boolean_query(
        [
            (tantivy.Occur.Should, tantivy.Query.term_query(SCHEMA, field, t))
            for t in sorted(highlight_terms)
            for field in ("title", "description")
        ]
    )
    return match, highlight


def _filters(query: SearchQuery) -> list[tuple[tantivy.Occur, tantivy.Query]]:
    out: list[tuple[tantivy.Occur, tantivy.Query]] = []

    def must(q: tantivy.Query) -> None:
        out.append((tantivy.Occur.Must, tantivy.Query.const_score_query(q, 0.0)))

    if query.category:
        term = category_term(_category_depth(query), category_key(query.category))
        must(tantivy.Query.term_query(SCHEMA, "category", term))
    if query.brands:
        must(tantivy.Query.term_set_query(SCHEMA, "brand", list(query.brands)))
    if query.price_min is not None or query.price_max is not None:
        must(
            tantivy.Query.range_query(
                SCHEMA,
                "price",
                tantivy.FieldType.Float,
                lower_bound=None if query.price_min is None else float(query.price_min),
                upper_bound=None if query.price_max is None else float(query.price_max),
            )
        )
    if query.rating_min is not None:
        must(
            tantivy.Query.range_query(
                SCHEMA, "rating", tantivy.FieldType.Float, lower_bound=float(query.rating_min)
            )
        )
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


def _range(field: str, kind: tantivy.FieldType, value: Any, *, above: bool, inclusive: bool) -> tantivy.Query:
    if above:
        return tantivy.Query.range_query(SCHEMA, field, kind, lower_bound=value, include_lower=inclusive)
    return tantivy.Query.range_query(SCHEMA, field, kind, upper_bound=value, include_upper=inclusive)


def _after_filter(field: str, descending: bool, query: SearchQuery) -> tantivy.Query:
    """Documents strictly after (value, hash) in the order (field asc|desc, pid_hash asc)."""
    assert query.search_after is not None
    value, key = query.search_after
    kind = tantivy.FieldType.Integer if field == "created_at_ms" else tantivy.FieldType.Float
    value = int(value) if kind is tantivy.FieldType.Integer else float(value)
    beyond = _range(field, kind, value, above=not descending, inclusive=False)
    same = tantivy.Query.range_query(SCHEMA, field, kind, lower_bound=value, upper_bound=value)
    later = _range("pid_hash", tantivy.FieldType.Integer, int(key), above=True, inclusive=False)
    tie = tantivy.Query.boolean_query([(tantivy.Occur.Must, same), (tantivy.Occur.Must, later)])
    return tantivy.Query.boolean_query([(tantivy.Occur.Should, beyond), (tantivy.Occur.Should, tie)])


class _Matches(NamedTuple):
    """Every match of a query (from a fetch that got them all), in no particular order."""

    keys: list[int]  # pid_hash
    addresses: list[Any]


def _relevance_page(
    searcher: tantivy.Searcher, base: tantivy.Query, query: SearchQuery, every_up_to: int = 0
) -> tuple[list[tuple[float, int, Any]], int, _Matches | None]:
    """Top hits by (score desc, hash asc), fetching deeper until the page is certain; with
    ``every_up_to``, also every match when there are at most that many (else None).

    Tantivy returns hits by score, ordering equal scores arbitrarily; a hit is placed for sure only when
    its score is above the lowest score fetched (or everything was fetched), so the fetch grows until the
    page is all sure. Only the page and the hits tied with its last one are ordered here: fetching every
    match (for the facets) costs no Python work per match beyond reading its key.
    """
    if query.search_after is not None:
        return _relevance_page_after(searcher, base, query)
    wanted = query.offset + query.limit
    fetch = max(64, wanted * 2, every_up_to)
    while True:
        result = searcher.search(base, limit=fetch, count=True, weight_by_field="tiebreak")
        total = _count(result)
        scored = result.hits
        complete = len(scored) < fetch
        end = min(wanted, len(scored))
        if 0 < end < len(scored):
            boundary = scored[end - 1][0]
            while end < len(scored) and scored[end][0] == boundary:
                end += 1  # ties with the page's last hit may order before it
        if complete or end < len(scored):
            every = None
            if complete and every_up_to:
                addresses = [address for _, address in scored]
                keys = cast(list[int], searcher.fast_field_values("pid_hash", addresses))
                every = _Matches(keys, addresses)
                head_keys = keys[:end]
            else:
                head = [address for _, address in scored[:end]]
                head_keys = cast(list[int], searcher.fast_field_values("pid_hash", head))
            entries = sorted(
                (
                    (float(score), key, address)
                    for (score, address), key in zip(scored, head_keys, strict=False)
                ),
                key=lambda e: (-e[0], e[1]),
            )
            return entries[query.offset : wanted], total, every
        fetch *= 4


def _relevance_page_after(
    searcher: tantivy.Searcher, base: tantivy.Query, query: SearchQuery
) -> tuple[list[tuple[float, int, Any]], int, None]:
    """``_relevance_page`` after a cursor: the page starts after the hit the cursor names."""
    assert query.search_after is not None
    after = (-float(query.search_after[0]), int(query.search_after[1]))
    fetch = max(64, query.limit * 2)
    while True:
        result = searcher.search(base, limit=fetch, count=True, weight_by_field="tiebreak")
        total = _count(result)
        scored = result.hits
        hashes = searcher.fast_field_values("pid_hash", [address for _, address in scored])
        entries = sorted(
            (
                (-float(score), int(key or 0), address)
                for (score, address), key in zip(scored, hashes, strict=True)
            ),
            key=lambda e: (e[0], e[1]),
        )
        complete = len(scored) < fetch
        if complete:
            sure = len(entries)
        else:
            lowest = -float(scored[-1][0])
            sure = sum(1 for e in entries if e[0] < lowest)
        start = bisect_right([(e[0], e[1]) for e in entries], after)
        if complete or start + query.limit <= sure:
            page = entries[start : start + query.limit]
            return [(-neg, key, address) for neg, key, address in page], total, None
        fetch *= 4


def _addresses(searcher: tantivy.Searcher, engine: _Engine, hashes: list[int]) -> list[tuple[int, Any]]:
    """Doc addresses of live documents by product hash, in the order given."""
    if not hashes:
        return []
    # a disjunction of term queries: for a page of ids ~7x cheaper than a term_set_query (0.08 vs 0.55 ms)
    either = tantivy.Query.boolean_query(
        [(tantivy.Occur.Should, tantivy.Query.term_query(SCHEMA, "pid_hash", h)) for h in hashes]
    )
    live = [(tantivy.Occur.Must, either), (tantivy.Occur.Must, engine.live_query)]
    hits = searcher.search(tantivy.Query.boolean_query(live), limit=len(hashes), count=False).hits
    addresses = [address for _, address in hits]
    keys = searcher.fast_field_values("pid_hash", addresses)
    by_key = {int(k or 0): a for k, a in zip(keys, addresses, strict=True)}
    return [(h, by_key[h]) for h in hashes if h in by_key]


def _sort_values(doc: SearchDocument, sort: Sort, score: float, key: int, has_text: bool) -> tuple[Any, ...]:
    if sort is Sort.RELEVANCE and has_text:
        return (score, key)
    if sort in (Sort.PRICE_ASC, Sort.PRICE_DESC):
        return (float(doc.price), key)
    if sort is Sort.RATING:
        return (-1.0 if doc.rating is None else float(doc.rating), key)
    if sort is Sort.NEWEST:
        return (int(doc.created_at_ms), key)
    return (float(doc.popularity), key)


def _address_key(address: Any) -> tuple[int, int]:
    return (address.segment_ord, address.doc)


def _bucket_keys(
    searcher: tantivy.Searcher,
    engine: _Engine,
    matches: _Matches,
    loaded: dict[tuple[int, int], SearchDocument],
) -> list[BucketKeys]:
    """The facet bucket keys of these matches; documents read for it go to ``loaded`` (a page's hits
    reuse them)."""
    addresses = matches.addresses
    revisions = cast(list[int], searcher.fast_field_values("revision", addresses))

    def load(i: int) -> SearchDocument:
        doc = _load(searcher, addresses[i])
        loaded[_address_key(addresses[i])] = doc
        return doc

    return engine.facets.lookup(matches.keys, revisions, load)


def _documents(
    searcher: tantivy.Searcher,
    engine: _Engine,
    page: list[tuple[float, int, Any]],
    query: SearchQuery,
    loaded: dict[tuple[int, int], SearchDocument] | None,
) -> list[SearchDocument]:
    """The documents of a page's (score, key, address) hits; an in-stock-only page's from the memo of
    versions (``versions.DocumentMemo``)."""
    addresses = [address for _, _, address in page]

    def load(i: int) -> SearchDocument:
        doc = loaded.get(_address_key(addresses[i])) if loaded else None
        return _load(searcher, addresses[i]) if doc is None else doc

    if not query.in_stock_only or not page:
        return [load(i) for i in range(len(page))]
    revisions = cast(list[int], searcher.fast_field_values("revision", addresses))
    return engine.documents.lookup([key for _, key, _ in page], revisions, load)


def _hits(
    searcher: tantivy.Searcher,
    engine: _Engine,
    page: list[tuple[float, int, Any]],
    query: SearchQuery,
    highlight_query: tantivy.Query | None,
    loaded: dict[tuple[int, int], SearchDocument] | None = None,
) -> list[Hit]:
    generators: dict[str, Any] = {}
    if query.with_highlights and highlight_query is not None and page:
        for field in ("title", "description"):
            generator = tantivy.SnippetGenerator.create(searcher, highlight_query, SCHEMA, field)
            generator.set_max_num_chars(150)
            generators[field] = generator
    has_text = highlight_query is not None
    hits = []
    for (score, key, _), doc in zip(page, _documents(searcher, engine, page, query, loaded), strict=True):
        highlights: dict[str, list[str]] = {}
        for field, generator in generators.items():
            snippet = generator.snippet_from_doc(tantivy.Document(**{field: getattr(doc, field)}))
            if snippet.highlighted():
                highlights[field] = [snippet.to_html().replace("<b>", "<em>").replace("</b>", "</em>")]
        hits.append(
            Hit(
                document=doc,
                score=score,
                sort_values=_sort_values(doc, query.sort, score, key, has_text),
                highlights=highlights,
            )
        )
    return hits


def _category_depth(query: SearchQuery) -> int:
    return len([p for p in query.category if p.strip()])


def _facet_level(query: SearchQuery) -> int:
    return min(_category_depth(query) + 1, MAX_CATEGORY_DEPTH)


def _facet_aggs(query: SearchQuery) -> dict[str, Any]:
    size = max(1, query.facet_size)
    exact = 1 << 20  # every term from every segment: counts are exact, not estimates
    ranges = []
    for bucket in DEFAULT_PRICE_RANGES:
        spec: dict[str, Any] = {"key": bucket.key}
        if bucket.low is not None:
            spec["from"] = float(bucket.low)
        if bucket.high is not None:
            spec["to"] = float(bucket.high)
        ranges.append(spec)
    return {
        "brand": {"terms": {"field": "brand", "size": size, "segment_size": exact}},
        # every level's terms; ``_facets`` keeps the wanted level (an ``include`` regex costs ~2 ms more
        # per search than the few hundred extra buckets; catalogs have far fewer than 2**16 paths)
        "category": {"terms": {"field": "category", "size": 1 << 16, "segment_size": exact}},
        "price": {"range": {"field": "price", "ranges": ranges}},
    }


def _facets(result: dict[str, Any], query: SearchQuery) -> dict[str, list[FacetBucket]]:
    facets: dict[str, list[FacetBucket]] = {}
    level = category_term(_facet_level(query), "")
    categories = [
        FacetBucket(str(b["key"])[len(level) :], int(b["doc_count"]))
        for b in result["category"]["buckets"]
        if str(b["key"]).startswith(level)
    ]
    brands = [FacetBucket(str(b["key"]), int(b["doc_count"])) for b in result["brand"]["buckets"]]
    for name, buckets in (("category", categories), ("brand", brands)):
        buckets.sort(key=lambda b: (-b.count, b.value))
        facets[name] = buckets[: max(1, query.facet_size)]
    by_key = {str(b["key"]): int(b["doc_count"]) for b in result["price"]["buckets"]}
    facets["price"] = [FacetBucket(r.key, by_key.get(r.key, 0)) for r in DEFAULT_PRICE_RANGES]
    return facets


__all__ = ["TantivySearchIndex", "fold", "product_hash"]
