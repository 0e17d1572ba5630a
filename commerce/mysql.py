"""Cluster commerce store: MySQL/MariaDB through PyMySQL, a pool of connections each driven by a worker
thread, one transaction per operation (InnoDB row locks make a cart's claim and a merge atomic across
API servers; a deadlock rolls the operation back and it runs again). Cart operations send their
statements and COMMIT as one multi-statement query (``sql_dialect.batch``): one round trip per edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pymysql
from pymysql.constants import CLIENT

from commerce.domain import CommerceError, CommerceUnavailable
from commerce.schema import COMPONENT, MIGRATIONS
from commerce.sql_dialect import MYSQL, EndsWithBatch
from commerce.store import SqlCommerceStore
from commerce.store_sql import Op, SqlOps
from kernel.database import MysqlTarget
from kernel.migrations import apply_migrations

T = TypeVar("T")
_RETRYABLE = {1205, 1213}  # lock wait timeout, deadlock
_TRIES = 5


class MysqlCommerceStore(SqlCommerceStore):
    def __init__(self, target: MysqlTarget, *, pool_size: int | None = None) -> None:
        self.target = target
        self.pool_size = pool_size or max(4, target.pool_size)
        self.ops = SqlOps(MYSQL)
        self._executor = ThreadPoolExecutor(max_workers=self.pool_size, thread_name_prefix="commerce-mysql")
        self._idle: list[pymysql.connections.Connection] = []
        self._slots = asyncio.Semaphore(self.pool_size)

    def _connect(self) -> pymysql.connections.Connection:
        # multi-statements: an operation's statements and its COMMIT in one round trip (sql_dialect.batch).
        # READ COMMITTED: every operation orders itself by explicit row locks (the cart's row, FOR UPDATE),
        # never by a snapshot; under REPEATABLE READ a cart edit's room check (a subquery of INSERT ...
        # SELECT, a locking read) also locked the gap before the next cart's lines, and edits of two
        # neighbouring carts deadlocked (docs/BENCHMARKS.md, session 14).
        return pymysql.connect(
            **self.target.pymysql_kwargs(),
            connect_timeout=5,
            client_flag=CLIENT.MULTI_STATEMENTS,
            init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        )

    def _migrate(self) -> None:
        kwargs = self.target.pymysql_kwargs()
        database = str(kwargs.pop("database"))
        conn = pymysql.connect(**kwargs, connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
            conn.select_db(database)
            apply_migrations(conn, dialect="mysql", component=COMPONENT, migrations=MIGRATIONS["mysql"])
        finally:
            conn.close()

    async def start(self) -> None:
        """Migrate, then open the whole pool: before the app takes traffic (its lifespan awaits this), not
        in its first requests, where each connect (~25 ms of CPU: PyMySQL builds a TLS context per
        connection) queued a burst of edits behind it (docs/BENCHMARKS.md, session 14)."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._migrate)
        except pymysql.err.MySQLError as exc:
            raise CommerceUnavailable(f"commerce database unavailable: {exc}") from exc
        missing = self.pool_size - len(self._idle)
        opened = await asyncio.gather(
            *(loop.run_in_executor(self._executor, self._connect) for _ in range(missing)),
            return_exceptions=True,
        )
        self._idle.extend(c for c in opened if not isinstance(c, BaseException))
        failed = next((c for c in opened if isinstance(c, BaseException)), None)
        if isinstance(failed, pymysql.err.MySQLError):
            raise CommerceUnavailable(f"commerce database unavailable: {failed}") from failed
        if failed is not None:
            raise failed

    async def close(self) -> None:
        for conn in self._idle:
            with contextlib.suppress(Exception):
                conn.close()
        self._idle.clear()
        self._executor.shutdown(wait=False)

    async def ping(self) -> None:
        await self._run(lambda conn: conn.ping(reconnect=False))

    async def _run(self, op: Op[T]) -> T:
        async with self._slots:
            conn = self._idle.pop() if self._idle else None
            try:
                result, conn = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._work, op, conn
                )
            finally:
                if conn is not None:
                    self._idle.append(conn)
            return result

    def _work(self, op: Op[T], conn: Any) -> tuple[T, Any]:
        for attempt in range(_TRIES):
            try:
                if conn is None:
                    conn = self._connect()
                result = op(conn)
                if not isinstance(op, EndsWithBatch):  # (that one's last round trip committed)
                    conn.commit()
                return result, conn
            except CommerceError:
                conn.rollback()
                raise
            except pymysql.err.MySQLError as exc:
                code = exc.args[0] if exc.args else None
                with contextlib.suppress(Exception):
                    conn.rollback()
                if code in _RETRYABLE and attempt + 1 < _TRIES:
                    time.sleep(0.002 * (attempt + 1))
                    continue
                if isinstance(exc, pymysql.err.OperationalError | pymysql.err.InterfaceError):
                    with contextlib.suppress(Exception):
                        conn.close()
                    conn = None
                raise CommerceUnavailable(f"commerce database error: {exc}") from exc
        raise AssertionError("unreachable")
