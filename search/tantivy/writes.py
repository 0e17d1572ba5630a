"""Versioned writes: upserts, deletes (tombstones) and stock flags, committed or staged.

Each write commits at its end, or with ``commit=False`` leaves its documents staged (added to the
writer: later writes here see them, searches do not) until ``commit_staged``, so that a projector can
write several polled batches in one Tantivy commit (each commit flushes a segment that merges later
rewrite: fewer, larger commits cost less). A projector commits its offsets only after that commit.
These run in worker threads; one writer per index directory, guarded by its engine's lock.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from search.port import SearchDocument, SearchIndexError
from search.tantivy.directory import IndexDirectory
from search.tantivy.documents import to_document, tombstone
from search.tantivy.engine import Engine
from search.tantivy.schema import product_hash


class Writes:
    def __init__(self, directory: IndexDirectory) -> None:
        self.directory = directory
        self.staging: Engine | None = None  # the engine holding writes staged by ``commit=False``
        self.stale_skipped = 0  # writes skipped as stale or duplicate (observability)

    def _engine(self) -> Engine:
        """The current engine, never mixing two: writes staged on an engine that a rebuild swapped out
        were dropped with its writer, so the caller is told to write them again."""
        engine = self.directory.current()
        if self.staging is not None and self.staging is not engine:
            self.staging = None
            raise SearchIndexError("the search index was swapped while writes were staged; write them again")
        return engine

    def _finish(self, engine: Engine, commit: bool) -> None:
        """Commit what this call and earlier staged calls wrote, or keep it staged."""
        if not engine.staged:
            return
        if not commit:
            self.staging = engine
            return
        try:
            engine.commit()
        finally:
            self.staging = None

    def commit_staged(self) -> None:
        engine = self._engine()
        with engine.write_lock:
            self._finish(engine, commit=True)

    def upsert(self, documents: Sequence[SearchDocument], commit: bool) -> int:
        engine = self._engine()
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
                    writer.add_document(to_document(doc, key))
                    engine.stage(key, doc, doc.revision)
            self._finish(engine, commit)
            return len(newest)

    def delete(self, items: Sequence[tuple[str, int]], commit: bool) -> int:
        engine = self._engine()
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
                    writer.add_document(tombstone(key, revision))
                    engine.stage(key, None, revision)
            self._finish(engine, commit)
            return len(newest)

    def set_stock_flags(self, items: Sequence[tuple[str, bool]], commit: bool) -> None:
        """Rewrite the documents whose flag changes, at their own revision."""
        engine = self._engine()
        with engine.write_lock:
            wanted = dict(items)
            keys = {product_id: product_hash(product_id) for product_id in wanted}
            changed = [
                msgspec.structs.replace(doc, in_stock=wanted[doc.product_id])
                for doc in _current_documents(engine, keys)
                if doc.in_stock != wanted[doc.product_id]
            ]
            if changed:
                writer = engine.writer
                for doc in changed:
                    key = keys[doc.product_id]
                    writer.delete_documents_by_term("pid_hash", key)
                    writer.add_document(to_document(doc, key))
                    engine.stage(key, doc, None)
            self._finish(engine, commit)


def _current_documents(engine: Engine, keys: dict[str, int]) -> list[SearchDocument]:
    """The newest live document of each product: staged if written since the last commit (searchers
    do not see those yet), else committed."""
    current: list[SearchDocument] = []
    committed: list[str] = []
    for product_id, key in keys.items():
        if key in engine.staged:
            if (staged := engine.staged[key]) is not None:  # None: deleted
                current.append(staged)
        else:
            committed.append(product_id)
    if committed:
        current.extend(engine.get(committed))
    return current
