"""Embedded commerce store: SQLite through the kernel's group-commit writer (``kernel.sqlite_writer``).

Every operation runs on the single writer thread, many of them to one transaction (each in its own
SAVEPOINT, so a refused one leaves no trace), answered only after COMMIT: many cart edits share one
fsync (``synchronous=FULL``: an acknowledged order survives a crash). The single writer serialises
operations, which makes a cart's claim and a merge atomic.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import TypeVar

from commerce.domain import CommerceError, CommerceUnavailable
from commerce.schema import COMPONENT, MIGRATIONS
from commerce.sql_dialect import SQLITE
from commerce.store import SqlCommerceStore
from commerce.store_sql import Op, SqlOps
from kernel.migrations import apply_migrations
from kernel.sqlite_writer import GroupCommitWriter

T = TypeVar("T")


def _migrate(conn: sqlite3.Connection) -> None:
    apply_migrations(conn, dialect="sqlite", component=COMPONENT, migrations=MIGRATIONS["sqlite"])


class SqliteCommerceStore(SqlCommerceStore):
    def __init__(self, path: Path | str, *, max_batch: int = 500) -> None:
        self.path = Path(path)
        self.ops = SqlOps(SQLITE)
        self._writer = GroupCommitWriter(
            self.path,
            name="commerce",
            migrate=_migrate,
            unavailable=CommerceUnavailable,
            passes=CommerceError,
            not_started="commerce store not started",
            closed="commerce store closed",
            max_batch=max_batch,
        )

    async def start(self) -> None:
        await self._writer.start()

    async def close(self) -> None:
        await self._writer.close()

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    def _run(self, op: Op[T]) -> asyncio.Future[T]:  # type: ignore[override]
        return self._writer.submit(op)
