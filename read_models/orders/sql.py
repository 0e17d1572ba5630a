"""The orders store on SQLite (embedded) and MySQL/MariaDB (cluster): one table ``ro_orders``, the order as
JSON plus the columns it is looked up and ordered by. Blocking drivers, so calls run in a worker thread on
one connection under a lock: the projector writes in batches and the reads are single indexed lookups."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import msgspec
import pymysql

from kernel.database import MysqlTarget
from kernel.migrations import Dialect, Migration, apply_migrations
from read_models.orders.port import Order, OrdersPage, OrdersStoreError, PageCursor

T = TypeVar("T")
COMPONENT: Final = "orders"
_ID = "CHARACTER SET ascii COLLATE ascii_bin"
MIGRATIONS: Final[dict[Dialect, list[Migration]]] = {
    "sqlite": [
        Migration(
            1,
            [
                """CREATE TABLE IF NOT EXISTS ro_orders (order_id TEXT NOT NULL PRIMARY KEY,
                   customer_id TEXT NOT NULL, placed_ts REAL NOT NULL, revision INTEGER NOT NULL,
                   body BLOB NOT NULL)""",
                "CREATE INDEX IF NOT EXISTS ro_orders_customer"
                " ON ro_orders (customer_id, placed_ts, order_id)",
            ],
        )
    ],
    "mysql": [
        Migration(
            1,
            [
                f"""CREATE TABLE IF NOT EXISTS ro_orders (order_id VARCHAR(64) {_ID} NOT NULL PRIMARY KEY,
                    customer_id VARCHAR(128) {_ID} NOT NULL, placed_ts DOUBLE NOT NULL,
                    revision BIGINT NOT NULL, body LONGBLOB NOT NULL,
                    KEY ro_orders_customer (customer_id, placed_ts, order_id)) ENGINE=InnoDB""",
            ],
        )
    ],
}
_INSERT: Final = (
    "INSERT INTO ro_orders (order_id, customer_id, placed_ts, revision, body) VALUES (?, ?, ?, ?, ?)"
)
_UPSERT: Final[dict[Dialect, str]] = {
    "sqlite": _INSERT + " ON CONFLICT (order_id) DO UPDATE SET customer_id = excluded.customer_id,"
    " placed_ts = excluded.placed_ts, revision = excluded.revision, body = excluded.body"
    " WHERE excluded.revision > ro_orders.revision",
    "mysql": _INSERT + " ON DUPLICATE KEY UPDATE body = IF(VALUES(revision) > revision, VALUES(body), body),"
    " placed_ts = IF(VALUES(revision) > revision, VALUES(placed_ts), placed_ts),"
    " revision = GREATEST(revision, VALUES(revision))",
}
_decode = msgspec.json.Decoder(Order).decode
_encode = msgspec.json.encode


class _SqlOrdersStore:
    dialect: Dialect = "sqlite"

    def __init__(self) -> None:
        self._conn: Any = None
        self._lock = asyncio.Lock()

    def _connect(self) -> Any:
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        return text if self.dialect == "sqlite" else text.replace("?", "%s")

    async def _run(self, fn: Callable[[Any], T]) -> T:
        async with self._lock:
            try:
                return await asyncio.to_thread(self._work, fn)
            except (sqlite3.Error, pymysql.err.MySQLError) as exc:
                raise OrdersStoreError(f"orders store unavailable: {exc}") from exc

    def _work(self, fn: Callable[[Any], T]) -> T:
        if self._conn is None:
            self._conn = self._connect()
        try:
            result = fn(self._conn)
            self._conn.commit()
            return result
        except BaseException:
            try:
                self._conn.rollback()
            except Exception:
                self._conn = None
            raise

    def _rows(self, conn: Any, text: str, params: Sequence[Any] = ()) -> list[Any]:
        cur = conn.cursor()
        try:
            cur.execute(self._sql(text), tuple(params))
            return list(cur.fetchall())
        finally:
            cur.close()

    async def start(self) -> None:
        def migrate(conn: Any) -> None:
            apply_migrations(
                conn, dialect=self.dialect, component=COMPONENT, migrations=MIGRATIONS[self.dialect]
            )

        await self._run(migrate)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(conn.close)

    async def ping(self) -> None:
        await self._run(lambda conn: self._rows(conn, "SELECT 1"))

    async def put_many(self, orders: Sequence[Order]) -> int:
        rows = [(o.order_id, o.customer_id, o.placed_ts, o.revision, _encode(o)) for o in orders]

        def write(conn: Any) -> int:
            cur = conn.cursor()
            try:
                cur.executemany(self._sql(_UPSERT[self.dialect]), rows)
                return int(cur.rowcount)
            finally:
                cur.close()

        return await self._run(write) if rows else 0

    async def get(self, order_id: str) -> Order | None:
        rows = await self._run(
            lambda c: self._rows(c, "SELECT body FROM ro_orders WHERE order_id = ?", (order_id,))
        )
        return _decode(bytes(rows[0][0])) if rows else None

    async def for_customer(
        self, customer_id: str, *, limit: int, after: PageCursor | None = None
    ) -> OrdersPage:
        query = "SELECT body FROM ro_orders WHERE customer_id = ?"
        params: list[Any] = [customer_id]
        if after is not None:
            query += " AND (placed_ts < ? OR (placed_ts = ? AND order_id < ?))"
            params += [after.placed_ts, after.placed_ts, after.order_id]
        query += " ORDER BY placed_ts DESC, order_id DESC LIMIT ?"
        params.append(limit + 1)
        rows = await self._run(lambda c: self._rows(c, query, params))
        orders = [_decode(bytes(body)) for (body,) in rows]
        more = len(orders) > limit
        orders = orders[:limit]
        cursor = PageCursor(orders[-1].placed_ts, orders[-1].order_id).encode() if more else None
        return OrdersPage(orders, cursor)


class SqliteOrdersStore(_SqlOrdersStore):
    dialect: Dialect = "sqlite"

    def __init__(self, path: Path | str) -> None:
        super().__init__()
        self.path = Path(path)

    def _connect(self) -> Any:
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn


class MysqlOrdersStore(_SqlOrdersStore):
    dialect: Dialect = "mysql"

    def __init__(self, target: MysqlTarget) -> None:
        super().__init__()
        self.target = target

    def _connect(self) -> Any:
        kwargs = self.target.pymysql_kwargs()
        database = str(kwargs.pop("database"))
        conn = pymysql.connect(**kwargs, connect_timeout=5)
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
        conn.select_db(database)
        return conn
