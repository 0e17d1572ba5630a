"""Group commit on one SQLite file: one connection, owned by one worker thread, one writer task.

Callers queue operations; the writer runs everything queued so far (up to ``max_batch``) in ONE
``BEGIN IMMEDIATE`` transaction, each operation inside a SAVEPOINT so a refused or failing one leaves
no trace, and resolves the callers' futures only after COMMIT. Many operations share one fsync (WAL,
``synchronous=FULL``: an acknowledged operation survives a crash), and the single writer serialises
them, which is what makes a "read, decide, write" operation atomic without row locks.

The embedded commerce store and the embedded reservation engine both run on it; what differs between
them (their error types, messages, migrations, what to do after a batch) is passed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from kernel.tasks import cancel_and_wait

log = structlog.get_logger(__name__)
T = TypeVar("T")
Op = Callable[[sqlite3.Connection], T]
"""One operation: runs on the writer thread, inside the batch's transaction, in its own SAVEPOINT."""


class GroupCommitWriter:
    """The single writer of one SQLite file. ``start`` opens (and migrates) it, ``submit`` queues an
    operation, ``close`` stops the writer and fails what is still queued.

    - ``name`` names the worker thread (``<name>-sqlite``), the writer task (``<name>-sqlite-writer``)
      and the log event of a failed batch (``<name> sqlite batch failed``);
    - ``migrate`` brings the schema up to date, on the worker thread, once the connection is open;
    - ``unavailable`` builds the caller's "store unavailable" error from a message: raised by ``submit``
      before ``start`` (``not_started``), set on the futures still queued at ``close`` (``closed``), and
      on an operation that hit a database error (``database error: ...``);
    - an operation raising one of ``passes`` (the context's domain errors) is rolled back to its
      savepoint and its caller gets that error as it is;
    - ``after_batch`` runs on the event loop after each batch's futures are resolved (e.g. to wake an
      outbox relay once the rows it will read are committed).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        name: str,
        migrate: Callable[[sqlite3.Connection], object],
        unavailable: Callable[[str], Exception],
        passes: type[Exception] | tuple[type[Exception], ...],
        not_started: str,
        closed: str,
        max_batch: int,
        after_batch: Callable[[], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name
        self.max_batch = max_batch
        self._migrate = migrate
        self._unavailable = unavailable
        self._passes = passes
        self._not_started = not_started
        self._closed = closed
        self._after_batch = after_batch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[Op[Any], asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        """The connection is open (between ``start`` and ``close``): ``submit`` accepts operations."""
        return self._conn is not None

    def _open(self) -> None:
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        self._migrate(conn)
        self._conn = conn

    async def start(self) -> None:
        """Open the connection on the worker thread (it is used on no other), then start the writer."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)
        self._task = asyncio.create_task(self._drain(), name=f"{self.name}-sqlite-writer")

    async def close(self) -> None:
        """Stop the writer, fail every queued operation (none of them ran), close the connection."""
        await cancel_and_wait([self._task])
        self._task = None
        for _, fut in self._pending:
            if not fut.done():
                fut.set_exception(self._unavailable(self._closed))
        self._pending.clear()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=False)

    def submit(self, op: Op[T]) -> asyncio.Future[T]:
        """Queue ``op``; the future resolves after the COMMIT of the batch that ran it."""
        if self._conn is None:
            raise self._unavailable(self._not_started)
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
                except Exception as exc:  # BEGIN, COMMIT or an op failed hard: the batch rolled back
                    log.error(f"{self.name} sqlite batch failed", error=repr(exc))
                    results = [(False, self._unavailable(f"database error: {exc}"))] * len(batch)
                for (_, fut), (ok, value) in zip(batch, results, strict=True):
                    if fut.done():  # the caller gave up (cancelled) while the batch ran
                        continue
                    if ok:
                        fut.set_result(value)
                    else:
                        fut.set_exception(value)
                if self._after_batch is not None:
                    self._after_batch()

    def _run_batch(self, ops: Sequence[Op[Any]]) -> list[tuple[bool, Any]]:
        """On the worker thread: one transaction, one savepoint per op; (ok, result or error) per op."""
        conn = self._conn
        assert conn is not None
        results: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                conn.execute("SAVEPOINT op")
                try:
                    results.append((True, op(conn)))
                except self._passes as exc:
                    conn.execute("ROLLBACK TO op")
                    results.append((False, exc))
                except sqlite3.Error as exc:
                    conn.execute("ROLLBACK TO op")
                    results.append((False, self._unavailable(f"database error: {exc}")))
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return results
