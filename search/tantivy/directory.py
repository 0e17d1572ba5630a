"""Index directories and the swap that stands in for an Elasticsearch alias.

Layout under ROOT: one directory per physical index (``<name>-<timestamp>``) and a pointer file
``<name>.current`` naming the live one. A rebuild fills a fresh directory and swaps the pointer
atomically (``os.replace``); every process that serves searches follows the pointer, so searches keep
answering from the old directory until the swap and from the new one right after.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

from search.tantivy.engine import Engine


class IndexDirectory:
    """The engine of the live index under ``root`` (or of one ``pinned`` directory, for a rebuild)."""

    POINTER_CHECK_SECONDS = 0.2

    def __init__(
        self, root: Path, name: str, *, heap_bytes: int, threads: int, pinned: Path | None = None
    ) -> None:
        self.root = root
        self.name = name
        self.heap_bytes = heap_bytes
        self.threads = threads
        self.pinned = pinned
        self.engine: Engine | None = None
        self._pointer_seen: str | None = None
        self._pointer_checked = 0.0
        self._switch_lock = threading.Lock()

    @property
    def pointer(self) -> Path:
        return self.root / f"{self.name}.current"

    def new_directory(self) -> Path:
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

    def _open(self, directory: Path) -> Engine:
        return Engine(directory, heap_bytes=self.heap_bytes, threads=self.threads)

    def current(self) -> Engine:
        """The engine to use now, following the live pointer (another process may have swapped it)."""
        if self.pinned is not None:
            return self._pinned_engine(self.pinned)
        engine = self.engine
        now = time.monotonic()
        if engine is not None and now - self._pointer_checked < self.POINTER_CHECK_SECONDS:
            return engine
        with self._switch_lock:
            self._pointer_checked = now
            name = self._read_pointer()
            old = None
            if name is None:  # no live index yet: create one
                self.root.mkdir(parents=True, exist_ok=True)
                directory = self.new_directory()
                fresh = self._open(directory)
                self._write_pointer(directory)
                name = directory.name
                old, self.engine = self.engine, fresh
            elif self.engine is None or name != self._pointer_seen:
                old, self.engine = self.engine, self._open(self.root / name)
            self._pointer_seen = name
            if old is not None:
                old.close()
            assert self.engine is not None
            return self.engine

    def _pinned_engine(self, directory: Path) -> Engine:
        if self.engine is None:
            with self._switch_lock:
                if self.engine is None:
                    self.engine = self._open(directory)
        return self.engine

    def swap_to(self, fresh: IndexDirectory) -> None:
        """Make ``fresh`` (a pinned directory, filled) the live index and delete the old one."""
        new_engine = fresh.current()
        new_engine.close()  # release its writer lock so this process (or the projector) can write
        fresh.engine = None
        with self._switch_lock:
            old_name = self._read_pointer()
            self._write_pointer(new_engine.path)
            old_engine, self.engine = self.engine, self._open(new_engine.path)
            self._pointer_seen = new_engine.path.name
            self._pointer_checked = time.monotonic()
        if old_engine is not None:
            old_engine.close()
        if old_name and old_name != new_engine.path.name:
            # Open searchers (here or in other processes) keep their mmapped files until they finish.
            shutil.rmtree(self.root / old_name, ignore_errors=True)

    def release(self) -> Engine | None:
        """Forget the open engine and hand it to the caller to close."""
        engine, self.engine = self.engine, None
        return engine
