"""The MySQL/MariaDB side: connections, one-transaction helper, health, retries after deadlocks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeVar

import aiomysql
import pymysql
import structlog
from pymysql.constants import CLIENT
from tenacity import AsyncRetrying, RetryError, retry_if_exception_type, stop_after_attempt, wait_incrementing

from inventory.domain import EngineUnavailable
from kernel.database import MysqlTarget

log = structlog.get_logger(__name__)
T = TypeVar("T")

DB_ERRORS: Final = (pymysql.err.MySQLError, OSError, TimeoutError, asyncio.TimeoutError)
_RETRYABLE_CODES: Final = frozenset({1205, 1213})  # lock wait timeout, deadlock: the transaction rolled back
_ISOLATION: Final = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"  # fewer gap locks, deadlocks
TRANSACTION_TRIES: Final = 5


class Conflict(Exception):
    """A deadlock or lock-wait timeout rolled the transaction back: run it again."""


class Fenced(Exception):
    """The batch was decided under an epoch that a reconcile has since replaced."""


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, pymysql.err.MySQLError) and bool(exc.args) and exc.args[0] in _RETRYABLE_CODES


def is_connection_trouble(exc: BaseException) -> bool:
    """The server is unreachable (trip the circuit breaker) rather than one statement failing."""
    if isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError, pymysql.err.InterfaceError)):
        return True
    return isinstance(exc, pymysql.err.OperationalError) and bool(exc.args) and exc.args[0] >= 2000


class Database:
    """A connection pool for short transactions, dedicated connections on request, and the health
    flag that makes every operation answer 503 while the server is unreachable."""

    def __init__(self, target: MysqlTarget, *, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self.pool: aiomysql.Pool | None = None
        self.ok = True
        self.error = ""

    def connect_kwargs(self, *, read_committed: bool = True) -> dict[str, Any]:
        kwargs = self.target.pymysql_kwargs()
        settings: dict[str, Any] = {
            "host": kwargs["host"],
            "port": kwargs["port"],
            "user": kwargs["user"],
            "password": kwargs["password"],
            "db": kwargs["database"],
            "autocommit": False,
            "charset": "utf8mb4",
            "connect_timeout": 3,
        }
        if read_committed:
            settings["init_command"] = _ISOLATION
        return settings

    async def open(self) -> None:
        self.pool = await aiomysql.create_pool(
            minsize=1, maxsize=self.target.pool_size, pool_recycle=3600, **self.connect_kwargs()
        )

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            await self.pool.wait_closed()
            self.pool = None

    async def connect_for_batches(self) -> aiomysql.Connection:
        """A connection of its own that accepts several statements per round trip. The group commit
        sends only SQL built by ``sql`` from validated identifiers, numbers and escaped text."""
        return await asyncio.wait_for(
            aiomysql.connect(**self.connect_kwargs(), client_flag=CLIENT.MULTI_STATEMENTS), self.timeout
        )

    def failed(self, exc: BaseException) -> None:
        if self.ok:
            log.warning("inventory database unavailable", error=repr(exc))
        self.ok = False
        self.error = repr(exc)[:200]

    def unavailable(self) -> EngineUnavailable:
        return EngineUnavailable(f"database unavailable: {self.error}")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiomysql.Cursor]:
        """One pooled transaction; database trouble becomes EngineUnavailable (503), a deadlock Conflict."""
        if self.pool is None:
            raise EngineUnavailable("inventory engine not started")
        try:
            conn = await asyncio.wait_for(self.pool.acquire(), self.timeout)
        except DB_ERRORS as exc:
            self.failed(exc)
            raise EngineUnavailable(f"database unavailable: {exc}") from exc
        try:
            async with conn.cursor() as cur:
                yield cur
            await asyncio.wait_for(conn.commit(), self.timeout)
        except DB_ERRORS as exc:
            if is_retryable(exc):
                with contextlib.suppress(Exception):
                    await conn.rollback()
                raise Conflict from exc
            conn.close()
            if is_connection_trouble(exc):
                self.failed(exc)
            raise EngineUnavailable(f"database error: {exc}") from exc
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.rollback()
            raise
        finally:
            self.pool.release(conn)

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run a transaction function again after a deadlock (it was rolled back entirely)."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Conflict),
            stop=stop_after_attempt(TRANSACTION_TRIES),
            wait=wait_incrementing(start=0.005, increment=0.005),
        )

        async def run() -> T:  # tenacity awaits only what a coroutine function returns
            return await attempt()

        try:
            return await retrying(run)
        except RetryError:
            raise EngineUnavailable("database contention; retry") from None
