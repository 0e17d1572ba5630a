"""Embedded commerce store: SQLite, one connection owned by one worker thread, group commit.

Callers queue operations; the worker runs everything queued so far in ONE ``BEGIN IMMEDIATE``
transaction (each operation inside a SAVEPOINT, so a refused one leaves no trace) and answers only
after COMMIT: many cart edits share one fsync (``synchronous=FULL``: an acknowledged order survives a
crash). The single writer serialises operations, which makes a cart's claim and a merge atomic.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from commerce.domain import CommerceError, CommerceUnavailable
from commerce.schema import COMPONENT, MIGRATIONS
from commerce.sql_dialect import SQLITE
from commerce.store import SqlCommerceStore
from commerce.store_sql import Op, SqlOps
from kernel.migrations import apply_migrations
from kernel.tasks import cancel_and_wait

log = structlog.get_logger(__name__)
T = TypeVar("T")


class SqliteCommerceStore(SqlCommerceStore):
    def __init__(self, path: Path | str, *, max_batch: int = 500) -> None:
        self.path = Path(path)
        self.max_batch = max_batch
        self.ops = SqlOps(SQLITE)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commerce-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[Op[Any], asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _open(self) -> None:
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        apply_migrations(conn, dialect="sqlite", component=COMPONENT, migrations=MIGRATIONS["sqlite"])
        self._conn = conn

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)
        self._task = asyncio.create_task(self._drain(), name="commerce-sqlite-writer")

    async def close(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None
        for _, fut in self._pending:
            if not fut.done():
                fut.set_exception(CommerceUnavailable("commerce store closed"))
        self._pending.clear()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=False)

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    def _run(self, op: Op[T]) -> asyncio.Future[T]:  # type: ignore[override]
        if self._conn is None:
            raise CommerceUnavailable("commerce store not started")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((op, fut))
        self._wake.set()
        return fut

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                try:
                    results = await loop.run_in_executor(
                        self._executor, self._run_batch, [op for op, _ in batch]
                    )
                except Exception as exc:
                    log.error("commerce sqlite batch failed", error=repr(exc))
                    results = [(False, CommerceUnavailable(f"database error: {exc}"))] * len(batch)
                for (_, fut), (ok, value) in zip(batch, results, strict=True):
                    if fut.done():
                        continue
                    if ok:
                        fut.set_result(value)
                    else:
                        fut.set_exception(value)

    def _run_batch(self, ops: Sequence[Op[Any]]) -> list[tuple[bool, Any]]:
        conn = self._conn
        assert conn is not None
        results: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                conn.execute("SAVEPOINT op")
                try:
                    results.append((True, op(conn)))
                except CommerceError as exc:
                    conn.execute("ROLLBACK TO op")
                    results.append((False, exc))
                except sqlite3.Error as exc:
                    conn.execute("ROLLBACK TO op")
                    results.append((False, CommerceUnavailable(f"database error: {exc}")))
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return results
