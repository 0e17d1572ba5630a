"""Reconcile: rebuild Redis' counters from MySQL under a new epoch (invariant 4 in ``engine``).

The epoch is bumped in MySQL first (waiting for in-flight group commits, which hold a shared lock on
``inv_meta``, and fencing any later batch of the old epoch), stock and live holds are read with
locking reads, written under the new epoch, and only then is ``ready`` set. Old epochs' keys are
unlinked in the background.

A rebuild deletes ``ready`` first, so every other process stops deciding (503) and counts a loss: it is
for real losses only. An engine that starts (a worker, a deploy, a CLI command), or that lost the fast
path and finds another process already rebuilt it, *adopts* the epoch ``ready`` names when it is
consistent: the same epoch as MySQL's ``inv_meta`` (no reconcile began since), built in this very Redis
server (``built`` holds its ``run_id``), and not the epoch this process itself found lost. The check and
the rebuild run under a named MySQL lock, so engines starting together rebuild once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Final, NamedTuple

import aiomysql
import msgspec
import structlog
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_incrementing,
)

from inventory.cluster import sql
from inventory.cluster.database import DB_ERRORS, Conflict, Database, is_connection_trouble, is_retryable
from inventory.cluster.fast_path import FastPath
from inventory.cluster.keys import member, stock_hash
from inventory.cluster.records import BackgroundTasks, Stats
from inventory.cluster.sweeper import Sweeper
from inventory.domain import EngineUnavailable, ReconcileReport, StockLevel
from inventory.sql_common import STOCK_COLUMNS, stock_from_row

log = structlog.get_logger(__name__)

_TRIES: Final = 5
_START_LOCK_S: Final = 120  # how long a starting engine waits for another's rebuild before its own
_PIPELINE_COMMANDS: Final = 2000
_UNLINK_CHUNK: Final = 500


class HeldRow(NamedTuple):
    reservation_id: str
    sku: str
    customer_id: str
    quantity: int
    expires_at: float
    idempotency_key: str


class CustomerUnits(NamedTuple):
    """Units a customer holds or bought of a SKU."""

    sku: str
    customer_id: str
    units: int


class IdempotencyRow(NamedTuple):
    key: str
    reservation_id: str
    created_at: float


class Truth(NamedTuple):
    """What MySQL says, read under the new epoch."""

    epoch: int
    stocks: list[StockLevel]
    holds: list[HeldRow]
    customers: list[CustomerUnits]
    idempotency: list[IdempotencyRow]


class Reconciler:
    def __init__(
        self,
        db: Database,
        fast: FastPath,
        sweeper: Sweeper,
        *,
        is_running: Callable[[], bool],
        clock: Callable[[], float],
        stats: Stats,
        tasks: BackgroundTasks,
    ) -> None:
        self.db, self.fast, self.sweeper = db, fast, sweeper
        self.is_running, self.clock, self.stats, self.tasks = is_running, clock, stats, tasks
        self.task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def reconcile(self) -> ReconcileReport:
        """Rebuild Redis from MySQL under a new epoch. Safe to run any time."""
        async with self._lock:
            started = time.perf_counter()
            retrying = AsyncRetrying(  # a deadlock with a concurrent transition rolled it back: go again
                retry=retry_if_exception_type(Conflict),
                stop=stop_after_attempt(_TRIES),
                wait=wait_incrementing(start=0.05, increment=0.05),
            )
            try:
                report: ReconcileReport = await retrying(self._rebuild)
            except RetryError:
                self.stats.reconcile_failures += 1
                raise EngineUnavailable("reconcile kept deadlocking; retry") from None
            except Exception:
                self.stats.reconcile_failures += 1
                raise
            self.stats.reconciles += 1
            self.stats.last_reconcile_at = time.time()
            log.info(
                "inventory reconciled",
                epoch=report.epoch,
                skus=report.skus,
                held=report.held_reservations,
                seconds=round(time.perf_counter() - started, 3),
            )
        # Holds stranded by a crash (in Redis before, never recorded) are now gone; settle in-doubt ones.
        with contextlib.suppress(EngineUnavailable):
            await self.sweeper.settle_in_doubt()
        return msgspec.structs.replace(report, seconds=time.perf_counter() - started)

    async def start_up(self) -> None:
        """At engine start: adopt a consistent ready epoch, else rebuild (once across starting engines)."""
        await self._adopt_or_rebuild(lost=None)

    async def _adopt_or_rebuild(self, *, lost: str | None) -> None:
        """Under the named start lock: adopt the ready epoch (see the module docstring), else reconcile."""
        lock, epoch = f"inv_start:{self.fast.prefix}", None
        try:
            conn = await aiomysql.connect(**self.db.connect_kwargs(read_committed=True))
        except DB_ERRORS as exc:
            raise EngineUnavailable(f"database unavailable: {exc}") from exc
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT GET_LOCK(%s, %s)", (lock, _START_LOCK_S))  # timeout: go on
                try:
                    epoch = await self._adoptable(cur, lost)
                    if epoch is not None:
                        self.fast.epoch = epoch
                        log.info("inventory fast path adopted (no rebuild)", epoch=epoch)
                    else:
                        await self.reconcile()
                finally:
                    with contextlib.suppress(Exception):
                        await cur.execute("SELECT RELEASE_LOCK(%s)", (lock,))
        except DB_ERRORS as exc:
            if is_connection_trouble(exc):
                self.db.failed(exc)
            raise EngineUnavailable(f"database unavailable: {exc}") from exc
        finally:
            conn.close()
        if epoch is not None:
            with contextlib.suppress(EngineUnavailable):
                await self.sweeper.settle_in_doubt()

    async def _adoptable(self, cur: aiomysql.Cursor, lost: str | None) -> str | None:
        """The epoch ``ready`` names if it is consistent with MySQL and this Redis server, else None."""
        await cur.execute("SELECT epoch FROM inv_meta WHERE id = 1")
        row = await cur.fetchone()
        await cur.connection.commit()  # a fresh snapshot next time
        try:
            ready = await self.fast.ready_epoch()
            if ready is None or row is None or ready != str(row[0]) or ready == lost:
                return None
            await self.fast.load_scripts()  # also reads the server's run_id
            built = await self.fast.redis.get(self.fast.keys.built(ready))
        except RedisError as exc:
            raise EngineUnavailable(f"redis unavailable: {exc}") from exc
        return ready if built is not None and built == self.fast.run_id else None

    def schedule(self) -> None:
        """Reconcile in the background until the fast path is ready again (one task at a time)."""
        if not self.is_running() or (self.task is not None and not self.task.done()):
            return
        self.task = asyncio.create_task(self._until_done(), name="inventory-reconcile")

    async def wait_running(self, within: float) -> None:
        """Wait (bounded) for a scheduled reconcile to finish."""
        if self.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.task), within)

    def _needed(self) -> bool:
        return self.is_running() and self.fast.epoch is None

    async def _until_done(self) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            stop=lambda _: not self._needed(),
            after=_log_failure,
        )
        with contextlib.suppress(RetryError):
            async for attempt in retrying:
                with attempt:
                    if self._needed():
                        await self._adopt_or_rebuild(lost=self.fast.lost_epoch)

    async def _rebuild(self) -> ReconcileReport:
        self.fast.epoch = None
        try:
            await self.fast.redis.delete(self.fast.keys.ready)  # every process stops deciding now
            await self.fast.load_scripts()
        except RedisError as exc:
            raise EngineUnavailable(f"redis unavailable: {exc}") from exc
        now = self.clock()
        truth = await self._read_truth(now)
        self.db.ok = True
        epoch = str(truth.epoch)
        try:
            await self._write_counters(epoch, truth, now)
            await self.fast.redis.set(self.fast.keys.built(epoch), str(self.fast.run_id))
            await self.fast.redis.set(self.fast.keys.ready, epoch)
        except RedisError as exc:
            raise EngineUnavailable(f"redis unavailable during rebuild: {exc}") from exc
        self.fast.epoch = epoch
        self.tasks.spawn(self._collect_garbage(epoch))
        return ReconcileReport(epoch=truth.epoch, skus=len(truth.stocks), held_reservations=len(truth.holds))

    async def _read_truth(self, now: float) -> Truth:
        """Bump the epoch and read the truth, serialised across processes by a named lock."""
        conn = await aiomysql.connect(**self.db.connect_kwargs(read_committed=False))
        lock = f"inv_reconcile:{self.fast.prefix}"
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT GET_LOCK(%s, 60)", (lock,))
                try:
                    truth = await self._bump_and_read(cur, now)
                    await conn.commit()
                finally:
                    with contextlib.suppress(Exception):
                        await cur.execute("SELECT RELEASE_LOCK(%s)", (lock,))
        except DB_ERRORS as exc:
            if is_retryable(exc):
                raise Conflict from exc
            if is_connection_trouble(exc):
                self.db.failed(exc)
            raise EngineUnavailable(f"database unavailable: {exc}") from exc
        finally:
            conn.close()
        return truth

    async def _bump_and_read(self, cur: aiomysql.Cursor, now: float) -> Truth:
        await cur.execute("UPDATE inv_meta SET epoch = epoch + 1 WHERE id = 1")
        await cur.execute("SELECT epoch FROM inv_meta WHERE id = 1")
        (epoch,) = await cur.fetchone()
        await cur.execute(f"SELECT {STOCK_COLUMNS} FROM inv_stock LOCK IN SHARE MODE")
        stocks = [stock_from_row(r) for r in await cur.fetchall()]
        await cur.execute(
            "SELECT id, sku, customer_id, quantity, expires_at, idempotency_key"
            " FROM inv_reservations WHERE status = 'held' LOCK IN SHARE MODE"
        )
        holds = [HeldRow(*r) for r in await cur.fetchall()]
        await cur.execute(
            "SELECT sku, customer_id, SUM(quantity) FROM inv_reservations"
            " WHERE status IN ('held', 'confirmed') GROUP BY sku, customer_id"
        )
        customers = [CustomerUnits(*r) for r in await cur.fetchall()]
        await cur.execute(
            "SELECT idempotency_key, id, created_at FROM inv_reservations WHERE created_at >= %s",
            ((self.fast.bucket(now) - 1) * self.fast.idempotency_ttl,),
        )
        idempotency = [
            row for row in (IdempotencyRow(*r) for r in await cur.fetchall())
            if not row.key.startswith(sql.LOST_PREFIX)
        ]  # fmt: skip
        return Truth(int(epoch), stocks, holds, customers, idempotency)

    async def _write_counters(self, epoch: str, truth: Truth, now: float) -> None:
        keys = self.fast.keys
        out = _Pipelined(self.fast.redis)
        for s in truth.stocks:
            fields = stock_hash(
                on_hand=s.on_hand, held=s.held, sold=s.sold, limit=s.per_customer_limit, revision=s.revision
            )
            out.pipe.hset(keys.stock(epoch, s.sku), mapping=fields)
            await out.added()
        for h in truth.holds:
            hold = member(h.reservation_id, h.sku, h.customer_id, int(h.quantity), h.idempotency_key)
            out.pipe.zadd(keys.expiry(epoch), {hold: float(h.expires_at)})
            await out.added()
        limited = {s.sku for s in truth.stocks if s.per_customer_limit is not None}
        for c in truth.customers:
            if c.sku in limited:  # counts are kept only for SKUs with a limit
                out.pipe.hset(keys.customers(epoch, c.sku), c.customer_id, int(c.units))
                await out.added()
        buckets: set[int] = set()
        for entry in truth.idempotency:
            bucket = self.fast.bucket(float(entry.created_at))
            buckets.add(bucket)
            out.pipe.hset(keys.idempotency(epoch, bucket), entry.key, entry.reservation_id)
            await out.added()
        for bucket in buckets:
            out.pipe.expire(keys.idempotency(epoch, bucket), self.fast.bucket_ttl(bucket, now))
            await out.added()
        await out.flush()

    async def _collect_garbage(self, current: str) -> None:
        """Unlink keys of older epochs (they are unreachable once ``ready`` moved on)."""
        keys = self.fast.keys
        try:
            stale: list[str] = []
            async for key in self.fast.redis.scan_iter(match=keys.pattern, count=1000):
                epoch = keys.epoch_of(key)
                if epoch is not None and epoch != current:
                    stale.append(key)
                if len(stale) >= _UNLINK_CHUNK:
                    await self.fast.redis.unlink(*stale)
                    stale.clear()
            if stale:
                await self.fast.redis.unlink(*stale)
        except RedisError as exc:
            log.warning("old epoch cleanup failed", error=repr(exc))


class _Pipelined:
    """Commands sent in pipelines of ``_PIPELINE_COMMANDS``."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.pipe: Pipeline = redis.pipeline(transaction=False)
        self.queued = 0

    async def added(self) -> None:
        self.queued += 1
        if self.queued >= _PIPELINE_COMMANDS:
            await self.flush()

    async def flush(self) -> None:
        if self.queued:
            await self.pipe.execute()
            self.pipe = self.redis.pipeline(transaction=False)
            self.queued = 0


def _log_failure(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    log.warning("reconcile failed; retrying", error=repr(error))
