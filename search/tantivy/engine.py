"""One physical index directory: its Tantivy index, its lazily opened writer and its revision map.

External versioning as in Elasticsearch: the revision map (product hash -> newest revision, deletes
included as tombstone documents) is loaded from the index with the writer; writes not newer than it are
skipped. Writes added to the writer but not committed yet are ``staged``: searchers do not see them, so
a stock-flag update must start from the staged document rather than the committed one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from pathlib import Path

import tantivy

from search.port import SearchDocument, SearchIndexError
from search.tantivy.documents import load
from search.tantivy.schema import SCHEMA, product_hash, register_analyzers


class Engine:
    def __init__(self, path: Path, *, heap_bytes: int, threads: int) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        try:
            self.index = tantivy.Index(SCHEMA, path=str(path), reuse=True)
        except ValueError as exc:  # written by an older version of this adapter's schema
            raise SearchIndexError(
                f"search index {path} has an older schema ({exc}); run `emporium rebuild search`"
            ) from exc
        register_analyzers(self.index)
        self.index.config_reader(reload_policy="commit")
        self._heap_bytes = heap_bytes
        self._threads = threads
        self._writer: tantivy.IndexWriter | None = None
        self.write_lock = threading.Lock()
        self._revisions: dict[int, int] | None = None
        # Written but not committed yet (product hash -> document, None for a tombstone).
        self.staged: dict[int, SearchDocument | None] = {}
        self.live_query = tantivy.Query.term_query(SCHEMA, "live", True)

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

    def get(self, product_ids: Sequence[str]) -> list[SearchDocument]:
        """The committed live documents of these products, in the order asked, each once."""
        searcher = self.index.searcher()
        wanted = dict.fromkeys(product_ids)
        keys = [product_hash(pid) for pid in wanted]
        query = tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Must, tantivy.Query.term_set_query(SCHEMA, "pid_hash", keys)),
                (tantivy.Occur.Must, self.live_query),
            ]
        )
        hits = searcher.search(query, limit=max(1, len(keys)), count=False).hits
        found: dict[str, SearchDocument] = {}
        for _, address in hits:
            doc = load(searcher, address)
            found[doc.product_id] = doc  # by id, not hash: a hash collision never returns the wrong product
        return [found[pid] for pid in wanted if pid in found]
