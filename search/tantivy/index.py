"""``TantivySearchIndex``: the port's async face over the modules of this package.

Tantivy is synchronous. Writes (``writes``) run in worker threads; reads (``reads``, ``suggest``, get)
run inline on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.port import SearchDocument, SearchQuery, SearchResult
from search.tantivy import reads
from search.tantivy.directory import IndexDirectory
from search.tantivy.engine import Engine
from search.tantivy.paging import count
from search.tantivy.queries import validate
from search.tantivy.suggest import suggest
from search.tantivy.writes import Writes


class TantivySearchIndex:
    """``SearchIndex`` and ``IndexRebuild`` over Tantivy directories under ``root``."""

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
        self._directory = IndexDirectory(
            self.root, name, heap_bytes=heap_bytes, threads=threads, pinned=_pinned
        )
        self._writes = Writes(self._directory)

    @property
    def stale_skipped(self) -> int:
        """Writes skipped as stale or duplicate (observability)."""
        return self._writes.stale_skipped

    def _current(self) -> Engine:
        return self._directory.current()

    # -- lifecycle --------------------------------------------------------------------------------

    async def ensure_index(self) -> None:
        await asyncio.to_thread(self._current)

    async def begin_rebuild(self) -> TantivySearchIndex:
        """A fresh directory, not behind the pointer: fill it, then ``finish_rebuild``."""
        directory = self._directory
        fresh = TantivySearchIndex(
            self.root,
            self.name,
            heap_bytes=directory.heap_bytes,
            threads=directory.threads,
            _pinned=directory.new_directory(),
        )
        await fresh.ensure_index()
        return fresh

    async def finish_rebuild(self, new_index: Any) -> None:
        if not isinstance(new_index, TantivySearchIndex) or new_index._directory.pinned is None:
            raise TypeError("finish_rebuild takes the index returned by begin_rebuild")
        await asyncio.to_thread(self._directory.swap_to, new_index._directory)

    async def close(self) -> None:
        engine = self._directory.release()
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
            return count(engine.index.searcher().search(engine.live_query, limit=1))

        return await asyncio.to_thread(run)

    # -- writes -----------------------------------------------------------------------------------

    async def commit_staged(self) -> None:
        """Make the writes staged with ``commit=False`` durable and searchable."""
        if self._writes.staging is not None:
            await asyncio.to_thread(self._writes.commit_staged)

    async def upsert(self, documents: Sequence[SearchDocument], *, commit: bool = True) -> int:
        if not documents:
            return 0
        return await asyncio.to_thread(self._writes.upsert, documents, commit)

    async def delete(self, items: Sequence[tuple[str, int]], *, commit: bool = True) -> int:
        if not items:
            return 0
        return await asyncio.to_thread(self._writes.delete, items, commit)

    async def set_stock_flags(self, items: Sequence[tuple[str, bool]], *, commit: bool = True) -> None:
        if items:
            await asyncio.to_thread(self._writes.set_stock_flags, items, commit)

    # -- reads ------------------------------------------------------------------------------------

    async def get(self, product_ids: Sequence[str]) -> list[SearchDocument]:
        if not product_ids:
            return []
        return self._current().get(product_ids)

    async def search(self, query: SearchQuery) -> SearchResult:
        validate(query)
        return reads.search(self._current(), query)

    async def correct(self, text: str) -> str | None:
        return reads.correct(self._current(), text)

    async def warm(self) -> None:
        """Build the typo vocabulary now (it is otherwise built in the background after a change)."""
        await asyncio.to_thread(reads.warm_vocabulary, self._current())

    async def suggest(self, prefix: str, limit: int = 10) -> list[str]:
        if not prefix.strip() or limit <= 0:
            return []
        return suggest(self._current(), prefix, limit)
