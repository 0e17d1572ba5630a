"""Embedded recommendations store: one SQLite file (``$DATA_DIR/recommendations.db`` by default).

One row per user (``recommendations``), per product (``related_products``) and per region
(``popular_products``, ``""`` for every region); the ranked list is a JSON array, so replacing it is one
row write and a shorter list can leave nothing behind. The revision rule is a single upsert
(``ON CONFLICT ... DO UPDATE ... WHERE excluded.revision > revision``), so the check and the write are
one atomic statement and a batch is one transaction.

sqlite3 blocks, so the writer and the reader each own one connection on their own single-thread
executor: the event loop never waits on disk, and WAL lets API reads run while the projector writes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from kernel.migrations import apply_migrations, numbered
from read_models.recommendations.port import (
    PopularProducts,
    Recommendations,
    RecommendationsStoreError,
    RelatedProducts,
    is_current,
)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS recommendations (
    user_id TEXT PRIMARY KEY,
    product_ids TEXT NOT NULL,      -- JSON array, best first
    model TEXT NOT NULL,
    revision INTEGER NOT NULL,
    generated_at_us INTEGER         -- microseconds since the epoch, UTC
) WITHOUT ROWID
"""
_RANKED_LISTS = """
CREATE TABLE IF NOT EXISTS {table} (
    {key} TEXT PRIMARY KEY,
    product_ids TEXT NOT NULL,
    model TEXT NOT NULL,
    revision INTEGER NOT NULL,
    generated_at_us INTEGER
) WITHOUT ROWID
"""
_MIGRATIONS = numbered(
    [_SCHEMA],
    [
        _RANKED_LISTS.format(table="related_products", key="product_id"),
        _RANKED_LISTS.format(table="popular_products", key="region"),
    ],
)


def _upsert(table: str, key: str) -> str:
    return f"""
INSERT INTO {table} ({key}, product_ids, model, revision, generated_at_us)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT ({key}) DO UPDATE SET
    product_ids = excluded.product_ids,
    model = excluded.model,
    revision = excluded.revision,
    generated_at_us = excluded.generated_at_us
WHERE excluded.revision > {table}.revision
"""


def _select(table: str, key: str) -> str:
    return f"SELECT product_ids, model, revision, generated_at_us FROM {table} WHERE {key} = ?"


# entity kind -> (table, key column)
_TABLES = {
    "user": ("recommendations", "user_id"),
    "related": ("related_products", "product_id"),
    "popular": ("popular_products", "region"),
}
_UPSERT = {kind: _upsert(*spec) for kind, spec in _TABLES.items()}
_SELECT = {kind: _select(*spec) for kind, spec in _TABLES.items()}

_encode_ids = msgspec.json.Encoder().encode
_decode_ids = msgspec.json.Decoder(tuple[str, ...]).decode


def _to_us(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(us: int | None) -> datetime | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


def _values(item: Recommendations | RelatedProducts | PopularProducts) -> tuple[Any, ...]:
    return (_encode_ids(item.product_ids), item.model, item.revision, _to_us(item.generated_at))


def _fields(row: tuple[Any, ...] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    product_ids, model, revision, generated_at_us = row
    return {
        "product_ids": _decode_ids(product_ids),
        "model": model,
        "revision": revision,
        "generated_at": _from_us(generated_at_us),
    }


class _Connection:
    """One sqlite3 connection confined to one worker thread."""

    def __init__(self, path: Path, name: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, timeout=10.0)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # a read model: the log can always rebuild it
            self._conn = conn
        return fn(self._conn)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)
        except sqlite3.Error as exc:
            raise RecommendationsStoreError(f"recommendations store {self._path}: {exc}") from exc

    async def close(self) -> None:
        def _close(_: sqlite3.Connection) -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        if self._conn is not None:
            await self.run(_close)
        self._executor.shutdown(wait=True)


class SqliteRecommendationsStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._writer = _Connection(self.path, "recs-sqlite-w")
        self._reader = _Connection(self.path, "recs-sqlite-r")

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._writer.run(
            lambda conn: apply_migrations(
                conn, dialect="sqlite", component="recommendations", migrations=_MIGRATIONS
            )
        )

    async def _put(self, kind: str, rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return 0

        def _write(conn: sqlite3.Connection) -> int:
            with conn:  # one transaction per batch
                conn.execute("BEGIN IMMEDIATE")
                return conn.executemany(_UPSERT[kind], rows).rowcount

        return await self._writer.run(_write)

    async def _get(self, kind: str, key: str) -> dict[str, Any] | None:
        row = await self._reader.run(lambda conn: conn.execute(_SELECT[kind], (key,)).fetchone())
        return _fields(row)

    async def put_many(self, items: Sequence[Recommendations]) -> int:
        return await self._put("user", [(r.user_id, *_values(r)) for r in items])

    async def get(self, user_id: str) -> Recommendations | None:
        def _read(conn: sqlite3.Connection) -> tuple[Any, Any]:
            with conn:  # one read transaction: both rows from the same snapshot
                conn.execute("BEGIN")
                own = conn.execute(_SELECT["user"], (user_id,)).fetchone()
                everywhere = conn.execute(_SELECT["popular"], ("",)).fetchone() if own else None
                return own, everywhere

        own_row, everywhere_row = await self._reader.run(_read)
        found, popular = _fields(own_row), _fields(everywhere_row)
        if found is None:
            return None
        own = Recommendations(user_id=user_id, **found)
        everywhere = None if popular is None else PopularProducts(region="", **popular)
        return own if is_current(own, everywhere) else None

    async def put_related(self, items: Sequence[RelatedProducts]) -> int:
        return await self._put("related", [(r.product_id, *_values(r)) for r in items])

    async def get_related(self, product_id: str) -> RelatedProducts | None:
        found = await self._get("related", product_id)
        return None if found is None else RelatedProducts(product_id=product_id, **found)

    async def put_popular(self, items: Sequence[PopularProducts]) -> int:
        return await self._put("popular", [(r.region, *_values(r)) for r in items])

    async def get_popular(self, region: str) -> PopularProducts | None:
        found = await self._get("popular", region)
        return None if found is None else PopularProducts(region=region, **found)

    async def ping(self) -> None:
        await self._reader.run(lambda conn: conn.execute("SELECT 1 FROM recommendations LIMIT 1").fetchall())

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()
