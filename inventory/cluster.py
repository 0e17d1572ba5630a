"""Cluster reservation engine: Redis decides (Lua), MySQL remembers (group commit), reconcile heals.

Invariants (what makes "never oversell, never lose an acknowledged reservation" hold):

1. **MySQL is the truth; Redis is a cache that may only be *stricter* than MySQL.** Every moment
   Redis' ``available`` for a SKU is <= the truth's. So operations that *take* availability are
   decided in Redis first and recorded in MySQL after; operations that *give it back*
   (release, expire, raising on-hand) are committed in MySQL first and applied to Redis after.
   A crash between the two steps can only leave Redis too strict (undersell), never too loose.
   Setting on-hand does both: under the stock row's lock it first lowers Redis to
   min(old, new) (``stock_pre``), commits, then sets the exact value fenced by the stock revision
   (``stock_post``), so neither a crash nor two racing admins can leave Redis above the truth.
2. **No answer before COMMIT.** A reservation is acknowledged only after the MySQL transaction that
   records it (row, ledger entry, counters, outbox events) has committed. Decisions are made many
   per EVALSHA (a micro-batching dispatcher) and written by a few writer tasks, one transaction per
   batch (group commit; a deadlock rolls the batch back and it is simply run again).
3. **A failed write is undone exactly once.** If a batch fails before COMMIT was sent, nothing is in
   MySQL and the Redis holds are dropped (``apply_final`` 'undo'). If COMMIT itself fails the
   outcome is unknown: the holds stay (strict) and are resolved once MySQL answers again, by
   inserting *tombstones*: ``INSERT IGNORE`` a placeholder row with the same primary key. Either
   the real row exists (the hold is real) or the tombstone wins and any late commit of the real
   row can no longer succeed (primary-key conflict -> refused). The sweeper resolves holds that
   are in Redis but not in MySQL the same way, so nothing stays stranded. A hold *is* its member
   "rid sku customer qty key" in the expiry sorted set, so applying an end state is a ZREM that
   moves stock only for the caller that removed it (idempotent under retries and races).
4. **Epochs fence stale state.** Redis keys live under ``<prefix>:<epoch>:``; ``<prefix>:ready``
   names the epoch whose counters are complete. FLUSHALL or a restart removes it (a restart is
   also detected by a changed ``run_id`` or lost scripts); every script then answers NOTREADY,
   the engine answers 503, and reconcile runs: it bumps ``inv_meta.epoch`` in MySQL (waiting for
   in-flight writer transactions, which hold a shared lock on that row, and making any later
   old-epoch batch fail its fence check), reads stock and live holds with locking reads, writes
   them under the new epoch and only then sets ``ready``. Old-epoch keys are garbage collected.
   (A restart that reloads an old RDB/AOF snapshot keeps ``ready``; it is caught by the monitor's
   ``run_id`` check within ``monitor_interval`` or by the dropped connections. Run the fast-path
   Redis without persistence, as the local stack does: a rebuild from MySQL is the recovery.)
5. **Idempotency:** a key maps to one reservation in Redis (a field of the current time bucket's
   hash, decided atomically with the hold; see reserve_batch.lua) and in MySQL (UNIQUE). A retry is
   answered from MySQL once the original is durable.
6. **Per-customer counts** are kept in Redis only for SKUs with a limit. Introducing a limit on a
   SKU without one stops decisions and reconciles (``stock_pre``/``stock_post`` answer REBUILD), so
   the counts are rebuilt from MySQL before any decision uses them.

Single Redis primary: scripts touch keys they compute, so this adapter does not run on Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeAlias, TypeVar

import aiomysql
import msgspec
import pymysql
import redis.asyncio as aioredis
import structlog
from pymysql.constants import CLIENT
from pymysql.converters import escape_string
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.exceptions import RedisError as _RedisError

from inventory import schema
from inventory.domain import (
    DEFAULT_LOW_STOCK_THRESHOLD,
    EngineUnavailable,
    IdempotencyConflict,
    InsufficientStock,
    InvalidTransition,
    LimitExceeded,
    ReconcileReport,
    Reservation,
    ReservationNotFound,
    ReserveRequest,
    Status,
    StockLevel,
    UnknownSku,
    decide_confirm,
    decide_release,
    validate_identifier,
    validate_limit,
    validate_on_hand,
    validate_reserve,
)
from inventory.events import outbox_rows
from inventory.sql_common import (
    RESERVATION_COLUMNS,
    STOCK_COLUMNS,
    effective_limit,
    reservation_from_row,
    stock_from_row,
)
from kernel.database import MysqlTarget
from kernel.tasks import cancel_and_wait

log = structlog.get_logger(__name__)
T = TypeVar("T")

LOST_PREFIX = "!lost:"  # tombstone idempotency keys; '!' is not allowed in client keys
SCRIPTS = ("reserve_batch", "apply_final", "due", "stock_pre", "stock_post")
_DB_ERRORS = (pymysql.err.MySQLError, OSError, TimeoutError, asyncio.TimeoutError)
_RETRYABLE_CODES = frozenset({1205, 1213})  # lock wait timeout, deadlock: the transaction was rolled back
_ISOLATION = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"  # fewer gap locks, fewer deadlocks


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, pymysql.err.MySQLError) and bool(exc.args) and exc.args[0] in _RETRYABLE_CODES


def _connection_trouble(exc: BaseException) -> bool:
    """The server is unreachable (trip the circuit breaker) rather than one statement failing."""
    if isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError, pymysql.err.InterfaceError)):
        return True
    return isinstance(exc, pymysql.err.OperationalError) and bool(exc.args) and exc.args[0] >= 2000


class _Conflict(Exception):
    """A deadlock or lock-wait timeout rolled the transaction back: run it again."""


class _Fenced(Exception):
    """The batch was decided under an epoch that a reconcile has since replaced."""


# A hold taken in Redis, waiting for the group commit: (reservation, the caller's future, epoch,
# durable), ``durable`` being shared by the holds of one Lua batch and set once they are written.
# A plain tuple: one is made per reservation on the hot path, at a fraction of a dataclass' cost.
_Decided: TypeAlias = tuple[Reservation, "asyncio.Future[Reservation]", str, "asyncio.Future[None]"]


@dataclass(slots=True)
class _Stats:
    lua_batches: int = 0
    lua_requests: int = 0
    write_batches: int = 0
    written: int = 0
    undone: int = 0
    in_doubt: int = 0
    lua_seconds: float = 0.0
    commit_seconds: float = 0.0
    reconciles: int = 0
    expired: int = 0
    tombstoned: int = 0


def _q(value: str) -> str:
    return "'" + escape_string(value) + "'"


def _double(x: float) -> str:
    """A float as an SQL approximate-value literal ("...e0"): MySQL parses it straight to DOUBLE,
    where a plain "123.456" is an exact DECIMAL converted per row (a measurable share of the group
    commit's server CPU). ``repr`` round-trips, so the stored value is exactly ``x``."""
    text = repr(x)
    return text if "e" in text else text + "e0"


def _literal_safe(text: str, quotes: int) -> bool:
    """Identifiers are validated to [A-Za-z0-9._:/@+#=-] (domain.validate_identifier), so they need no
    escaping inside '...'. The hot path checks a whole VALUES list with two C-level scans (exactly the
    quotes it wrote, no backslash) instead of escaping every value, and falls back to escaping should
    anything else ever get through."""
    return "\\" not in text and text.count("'") == quotes


# The group commit's INSERTs leave out the columns whose default is the value (schema migration 2).
_RESERVATION_INSERT = (
    "INSERT IGNORE INTO inv_reservations"
    " (id, idempotency_key, sku, customer_id, quantity, expires_at, created_at, updated_at) VALUES "
)
_LEDGER_RESERVE = "INSERT INTO inv_ledger (sku, kind, d_held, reservation_id, at) VALUES "


def _reservation_values(rows: Sequence[Reservation], now: float) -> str:
    """VALUES list of a group commit's reservation rows (one multi-row INSERT per batch).

    A batch shares ``created_at`` and mostly ``expires_at``: each float is formatted once per batch."""
    floats: dict[float, str] = {}

    def f(x: float) -> str:
        text = floats.get(x)
        if text is None:
            text = floats[x] = _double(x)
        return text

    updated = f(now)
    fast = ",".join(
        f"('{r.reservation_id}','{r.idempotency_key}','{r.sku}','{r.customer_id}',{r.quantity},"
        f"{f(r.expires_at)},{f(r.created_at)},{updated})"
        for r in rows
    )
    if _literal_safe(fast, 8 * len(rows)):
        return fast
    return ",".join(
        f"('{r.reservation_id}',{_q(r.idempotency_key)},{_q(r.sku)},{_q(r.customer_id)},"
        f"{r.quantity},{f(r.expires_at)},{f(r.created_at)},{updated})"
        for r in rows
    )


def _ledger_values(rows: Sequence[Reservation], now: float) -> str:
    """VALUES list of the ledger's 'reserve' movements, one row per reservation (columns as in
    ``_LEDGER_RESERVE``: d_on_hand and d_sold are the column defaults, 0; migration 2)."""
    at = _double(now)
    fast = ",".join(f"('{r.sku}','reserve',{r.quantity},'{r.reservation_id}',{at})" for r in rows)
    if _literal_safe(fast, 6 * len(rows)):
        return fast
    return ",".join(f"({_q(r.sku)},'reserve',{r.quantity},'{r.reservation_id}',{at})" for r in rows)


class ClusterEngine:
    """ReservationEngine over Redis (fast path) + MySQL/MariaDB (truth)."""

    def __init__(
        self,
        redis_url: str,
        mysql: MysqlTarget,
        *,
        prefix: str | None = None,
        clock: Callable[[], float] = time.time,
        low_stock_threshold: int = DEFAULT_LOW_STOCK_THRESHOLD,
        sweep_interval: float | None = 0.5,
        monitor_interval: float = 0.5,
        max_batch: int = 1000,
        max_write_batch: int = 5000,
        max_inflight: int = 4,
        writers: int = 3,
        write_spill: int = 64,
        dispatch_spill: int = 256,
        idempotency_ttl: int = 24 * 3600,
        lost_grace: float = 2.0,
        db_timeout: float = 10.0,
        reserve_deadline: float = 15.0,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        # One Redis may serve several deployments/tests: keys are namespaced by the database name.
        self.redis_url, self.mysql, self.prefix = redis_url, mysql, prefix or f"inv-{mysql.database}"
        self.clock = clock
        self.low_stock_threshold = low_stock_threshold
        self.sweep_interval, self.monitor_interval = sweep_interval, monitor_interval
        self.max_batch, self.max_write_batch = max_batch, max_write_batch
        self.idempotency_ttl, self.lost_grace, self.db_timeout = idempotency_ttl, lost_grace, db_timeout
        # Every step of a reservation is bounded, but a caller could still queue behind retries of
        # stuck batches: past this, it gets a retryable 503 (its hold, if granted later, answers a
        # retry with the same Idempotency-Key, or expires).
        self.reserve_deadline = reserve_deadline
        self.on_outbox = on_outbox
        self.dispatch_spill = max(1, dispatch_spill)
        self.stats = _Stats()
        self._redis = aioredis.Redis.from_url(
            redis_url,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),  # a dropped connection must surface: it may mean a restart
            socket_connect_timeout=2,
            socket_timeout=5,
            max_connections=64,
        )
        self._sha: dict[str, str] = {}
        self._lua_src = {
            n: resources.files("inventory.lua").joinpath(f"{n}.lua").read_text() for n in SCRIPTS
        }
        self._pool: aiomysql.Pool | None = None
        # Several group-commit writers: a batch's INSERTs run while another batch commits; they only
        # serialise briefly on the hot stock rows (locked at the end of each transaction).
        self._writer_conns: list[aiomysql.Connection | None] = [None] * max(1, writers)
        self._idle_writers = len(self._writer_conns)
        self.write_spill = max(1, write_spill)
        self._epoch: str | None = None  # None = not ready (reconcile needed)
        self._run_id: str | None = None
        self._db_ok = True
        self._db_error = ""
        self._waiting: dict[asyncio.Future[Reservation], float] = {}  # caller -> loop time of its deadline
        self._reserve_q: list[tuple[ReserveRequest, asyncio.Future[Reservation]]] = []
        self._reserve_wake = asyncio.Event()
        self._write_q: list[_Decided] = []
        self._write_wake = asyncio.Event()
        self._inflight = asyncio.Semaphore(max_inflight)
        self._lua_batches = 0  # reserve batches in flight
        self._writing: set[asyncio.Future[None]] = set()  # the durable futures of unwritten batches
        self._in_doubt: list[Reservation] = []
        self._reconcile_lock = asyncio.Lock()
        self._reconcile_task: asyncio.Task[Any] | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._active: set[asyncio.Task[Any]] = set()
        self._started = False

    # lifecycle ------------------------------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        """aiomysql connection settings shared by the pool and the group-commit writers."""
        kwargs = self.mysql.pymysql_kwargs()
        return {
            "host": kwargs["host"],
            "port": kwargs["port"],
            "user": kwargs["user"],
            "password": kwargs["password"],
            "db": kwargs["database"],
            "autocommit": False,
            "charset": "utf8mb4",
            "connect_timeout": 3,
            "init_command": _ISOLATION,
        }

    async def start(self) -> None:
        await self.migrate()
        self._pool = await aiomysql.create_pool(
            minsize=1, maxsize=self.mysql.pool_size, pool_recycle=3600, **self._connect_kwargs()
        )
        await self._load_scripts()
        self._started = True
        await self.reconcile()
        self._tasks = [
            asyncio.create_task(self._dispatch_loop(), name="inventory-dispatch"),
            *(
                asyncio.create_task(self._write_loop(i), name=f"inventory-group-commit-{i}")
                for i in range(len(self._writer_conns))
            ),
            asyncio.create_task(self._monitor_loop(), name="inventory-monitor"),
            asyncio.create_task(self._deadline_loop(), name="inventory-deadlines"),
        ]
        if self.sweep_interval:
            self._tasks.append(asyncio.create_task(self._sweep_loop(), name="inventory-sweeper"))

    async def close(self) -> None:
        self._started = False
        # Let queued decisions finish their commit so nothing acknowledged is half-done.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._drain_queues(), 5)
        await cancel_and_wait([*self._tasks, self._reconcile_task])
        self._tasks.clear()
        for _, fut in self._reserve_q:
            if not fut.done():
                fut.set_exception(EngineUnavailable("engine closed"))
        self._reserve_q.clear()
        for i, conn in enumerate(self._writer_conns):
            if conn is not None:
                conn.close()
                self._writer_conns[i] = None
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()
            self._pool = None
        await self._redis.aclose()

    async def _drain_queues(self) -> None:
        while (  # noqa: ASYNC110
            self._reserve_q
            or self._write_q
            or self._active
            or self._writing
            or self._idle_writers < len(self._writer_conns)
        ):
            await asyncio.sleep(0.01)

    async def migrate(self) -> list[int]:
        return await migrate_mysql(self.mysql)

    async def ping(self) -> None:
        if not self._started:
            raise EngineUnavailable("inventory engine not started")
        if not self._db_ok:
            raise EngineUnavailable(f"database unavailable: {self._db_error}")
        if self._epoch is None:
            raise EngineUnavailable("stock counters are being rebuilt (reconcile)")
        try:
            ready = await self._redis.get(self._k("ready"))
        except _RedisError as exc:
            self._lost(f"redis error: {exc!r}")
            raise EngineUnavailable(f"redis unavailable: {exc}") from exc
        if ready != self._epoch:
            self._lost("ready marker missing")
            raise EngineUnavailable("stock counters are being rebuilt (reconcile)")

    # small helpers ----------------------------------------------------------------------------

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _bucket(self, now: float) -> int:
        """The idempotency hash decisions at ``now`` write to (see reserve_batch.lua)."""
        return int(now // self.idempotency_ttl)

    async def _load_scripts(self) -> None:
        for name, src in self._lua_src.items():
            self._sha[name] = await self._redis.script_load(src)
        info = await self._redis.info("server")
        self._run_id = str(info.get("run_id"))

    async def _eval(self, name: str, *args: Any) -> Any:
        try:
            return await self._redis.evalsha(self._sha[name], 0, *args)
        except NoScriptError:
            # Scripts vanish only when Redis restarted (or SCRIPT FLUSH): its data may be stale too.
            self._lost("scripts missing (redis restarted)")
            with contextlib.suppress(_RedisError):
                await self._load_scripts()
            raise EngineUnavailable("redis restarted; rebuilding stock counters") from None
        except _RedisError as exc:
            self._lost(f"redis error: {exc!r}")
            raise EngineUnavailable(f"redis unavailable: {exc}") from exc

    def _lost(self, why: str) -> None:
        """Redis state can no longer be trusted: refuse decisions and rebuild from MySQL."""
        if self._epoch is not None:
            log.warning("inventory fast path lost; reconciling", reason=why)
        self._epoch = None
        self._schedule_reconcile()

    def _schedule_reconcile(self) -> None:
        if not self._started or (self._reconcile_task is not None and not self._reconcile_task.done()):
            return
        self._reconcile_task = asyncio.create_task(self._reconcile_until_done(), name="inventory-reconcile")

    async def _reconcile_until_done(self) -> None:
        delay = 0.1
        while self._started and self._epoch is None:
            try:
                await self.reconcile()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reconcile failed; retrying", error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _not_ready(self, observed_epoch: str) -> bool:
        """After a NOTREADY answer: adopt a newer epoch (another process reconciled) -> True to retry."""
        try:
            ready = await self._redis.get(self._k("ready"))
        except _RedisError as exc:
            self._lost(f"redis error: {exc!r}")
            return False
        if ready is not None and ready != observed_epoch:
            self._epoch = str(ready)
            return True
        self._lost("ready marker missing")
        return False

    def _check_open(self) -> str:
        if not self._started:
            raise EngineUnavailable("inventory engine not started")
        if not self._db_ok:
            raise EngineUnavailable(f"database unavailable: {self._db_error}")
        if self._epoch is None:
            self._schedule_reconcile()
            raise EngineUnavailable("stock counters are being rebuilt (reconcile); retry shortly")
        return self._epoch

    def _db_failed(self, exc: BaseException) -> None:
        if self._db_ok:
            log.warning("inventory database unavailable", error=repr(exc))
        self._db_ok = False
        self._db_error = repr(exc)[:200]

    @contextlib.asynccontextmanager
    async def _txn(self) -> AsyncIterator[aiomysql.Cursor]:
        """One pooled transaction; database trouble becomes EngineUnavailable (503), a deadlock _Conflict."""
        if self._pool is None:
            raise EngineUnavailable("inventory engine not started")
        try:
            conn = await asyncio.wait_for(self._pool.acquire(), self.db_timeout)
        except _DB_ERRORS as exc:
            self._db_failed(exc)
            raise EngineUnavailable(f"database unavailable: {exc}") from exc
        try:
            async with conn.cursor() as cur:
                yield cur
            await asyncio.wait_for(conn.commit(), self.db_timeout)
        except _DB_ERRORS as exc:
            if _retryable(exc):
                with contextlib.suppress(Exception):
                    await conn.rollback()
                raise _Conflict from exc
            conn.close()
            if _connection_trouble(exc):
                self._db_failed(exc)
            raise EngineUnavailable(f"database error: {exc}") from exc
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.rollback()
            raise
        finally:
            self._pool.release(conn)

    async def _retry(self, attempt: Callable[[], Awaitable[T]], tries: int = 5) -> T:
        """Run a transaction function again after a deadlock (it was rolled back entirely)."""
        for n in range(tries):
            try:
                return await attempt()
            except _Conflict:
                await asyncio.sleep(0.005 * (n + 1))
        raise EngineUnavailable("database contention; retry")

    # reserve: micro-batched Lua decisions ----------------------------------------------------------

    async def reserve(self, request: ReserveRequest) -> Reservation:
        validate_reserve(request)
        self._check_open()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Reservation] = loop.create_future()
        self._reserve_q.append((request, fut))
        self._reserve_wake.set()
        # A dict entry, not a timer per call (a third of the engine's Python time per reservation):
        # one deadline for all, so insertion order is deadline order for ``_deadline_loop``.
        self._waiting[fut] = loop.time() + self.reserve_deadline
        try:
            return await fut
        finally:
            del self._waiting[fut]

    async def _deadline_loop(self) -> None:
        loop = asyncio.get_running_loop()
        refusal = f"not decided within {self.reserve_deadline:g} s; retry with the same Idempotency-Key"
        while True:
            await asyncio.sleep(min(1.0, self.reserve_deadline / 4))
            now = loop.time()
            expired = []
            for fut, at in self._waiting.items():
                if at > now:
                    break
                expired.append(fut)
            for fut in expired:
                if not fut.done():  # the batch answers a future only if not done: this answer stands
                    fut.set_exception(EngineUnavailable(refusal))

    async def _dispatch_loop(self) -> None:
        while True:
            await self._reserve_wake.wait()
            self._reserve_wake.clear()
            while self._reserve_q:
                # Another Lua batch in parallel only for a deep queue (as the writers' spill): a
                # shallow one waits for the batch in flight and then goes as one larger batch.
                if self._lua_batches and len(self._reserve_q) < self.dispatch_spill:
                    break  # ``_decided`` wakes the loop again
                await self._inflight.acquire()
                batch = self._reserve_q[: self.max_batch]
                del self._reserve_q[: self.max_batch]
                task = asyncio.create_task(self._decide_or_fail(batch))
                self._lua_batches += 1
                self._active.add(task)
                task.add_done_callback(self._decided)

    def _decided(self, task: asyncio.Task[Any]) -> None:
        self._active.discard(task)
        self._lua_batches -= 1
        self._inflight.release()
        if self._reserve_q:
            self._reserve_wake.set()

    async def _decide_or_fail(self, batch: list[tuple[ReserveRequest, asyncio.Future[Reservation]]]) -> None:
        try:
            await self._decide(batch)
        except Exception as exc:  # a bug must not leave a whole batch of callers waiting forever
            log.exception("reserve batch failed", error=repr(exc))
            _fail_all((f for _, f in batch), EngineUnavailable("internal error; retry"))

    async def _decide(
        self, batch: list[tuple[ReserveRequest, asyncio.Future[Reservation]]], retry: bool = True
    ) -> None:
        try:
            epoch = self._check_open()
        except EngineUnavailable as exc:
            _fail_all((f for _, f in batch), exc)
            return
        now = self.clock()
        # Ids as new_reservation_id makes them (time-ordered ms prefix + 80 random bits), but one
        # urandom call per batch instead of one per reservation (a syscall each on the hot path).
        # A Reservation is built only for the holds Redis grants.
        stamp = f"{int(now * 1000):012x}"
        entropy = os.urandom(10 * len(batch)).hex()
        expiry: dict[int, float] = {}  # hold_seconds -> expires_at
        lines: list[str] = []
        for i, (req, _) in enumerate(batch):
            exp = expiry.get(req.hold_seconds)
            if exp is None:
                exp = expiry[req.hold_seconds] = round(now + req.hold_seconds, 3)
            lines.append(
                f"{stamp}{entropy[20 * i : 20 * i + 20]} {req.sku} {req.customer_id} {req.quantity}"
                f" {req.idempotency_key} {exp}\n"
            )
        bucket = self._bucket(now)
        bucket_ttl = int((bucket + 3) * self.idempotency_ttl - now) + 1  # fallback; the sweeper unlinks
        started = time.perf_counter()
        try:
            answer = await self._eval("reserve_batch", self.prefix, epoch, bucket, bucket_ttl, "".join(lines))
        except EngineUnavailable as exc:
            _fail_all((f for _, f in batch), exc)
            return
        self.stats.lua_batches += 1
        self.stats.lua_requests += len(batch)
        self.stats.lua_seconds += time.perf_counter() - started
        if answer == "NOTREADY":
            if retry and await self._not_ready(epoch):
                await self._decide(batch, retry=False)
            else:
                _fail_all((f for _, f in batch), EngineUnavailable("stock counters are being rebuilt; retry"))
            return
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        decided: list[_Decided] = []
        held = Status.HELD  # an enum attribute lookup is slow enough to hoist out of the loop
        for i, ((req, fut), code) in enumerate(zip(batch, answer.split(" "), strict=True)):
            if code == "O":
                res = Reservation(
                    reservation_id=stamp + entropy[20 * i : 20 * i + 20],
                    sku=req.sku,
                    quantity=req.quantity,
                    customer_id=req.customer_id,
                    status=held,
                    expires_at=expiry[req.hold_seconds],
                    created_at=now,
                    idempotency_key=req.idempotency_key,
                )
                decided.append((res, fut, epoch, durable))
                continue
            if fut.done():
                continue
            kind = code[0]
            if kind == "S":
                fut.set_exception(InsufficientStock(req.sku, req.quantity, int(code[1:])))
            elif kind == "L":
                has, limit = code[1:].split(":")
                fut.set_exception(LimitExceeded(req.sku, int(limit), int(has), req.quantity))
            elif kind == "U":
                fut.set_exception(UnknownSku(req.sku))
            else:  # "D<rid>": a retry of a reservation already decided
                repeat = asyncio.create_task(self._answer_repeat(req, code[1:], fut))
                self._active.add(repeat)
                repeat.add_done_callback(self._active.discard)
        if decided:
            self._writing.add(durable)
            self._write_q += decided
            self._write_wake.set()

    async def _answer_repeat(self, req: ReserveRequest, rid: str, fut: asyncio.Future[Reservation]) -> None:
        try:
            # The original may still be on its way to MySQL: wait for the batches written now.
            # Bounded: a caller must never wait forever; if it is still unsettled, the 503 below asks
            # the client to retry with the same key.
            pending = [b for b in self._writing if not b.done()]
            if pending:
                await asyncio.wait(pending, timeout=self.db_timeout)
            try:
                existing = await self.get_reservation(rid)
            except ReservationNotFound:
                raise EngineUnavailable(
                    "the original reservation is not settled yet; retry shortly"
                ) from None
            if not existing.matches(req):
                raise IdempotencyConflict("Idempotency-Key already used for a different reservation")
            if not fut.done():
                fut.set_result(existing)
        except Exception as exc:
            if not fut.done():
                fut.set_exception(exc)

    # group commit --------------------------------------------------------------------------------

    async def _writer(self, idx: int) -> aiomysql.Connection:
        conn = self._writer_conns[idx]
        if conn is None or conn.closed:
            conn = self._writer_conns[idx] = await asyncio.wait_for(
                # several statements per round trip (``_record_holds_batched``); writers send only
                # SQL built here from validated identifiers and numbers, or escaped text
                aiomysql.connect(**self._connect_kwargs(), client_flag=CLIENT.MULTI_STATEMENTS),
                self.db_timeout,
            )
        return conn

    async def _write_loop(self, idx: int) -> None:
        # Writer 0 takes whatever is queued; writer i joins only when more than i * write_spill
        # decisions wait. Light load thus gets few, large transactions: each round trip is a send
        # syscall that wakes MySQL. At 200 HTTP clients, spilling at 32 (and a Lua batch per loop
        # turn) made commits of ~48 and cost ~10% more server CPU per reservation than now (~50);
        # 256 (one writer) left the loop idle while a commit was out and served ~12% fewer. A deep
        # queue (thousands of in-process callers) is shared among the idle writers: closed-loop
        # clients otherwise fall into lock step (all of them in one Lua batch, then one commit, Redis
        # and MySQL taking turns) while parallel transactions overlap their round trips and InnoDB
        # merges their log flushes into one fsync.
        spill = idx * self.write_spill
        while True:
            if len(self._write_q) <= spill:
                self._write_wake.clear()
                await self._write_wake.wait()
                continue
            share = -(-len(self._write_q) // max(1, self._idle_writers))
            take = min(self.max_write_batch, max(self.write_spill, share))
            batch = self._write_q[:take]
            del self._write_q[:take]
            self._idle_writers -= 1
            try:
                await self._write_batch(batch, idx)
            except Exception as exc:  # never let a writer die
                log.exception("group commit crashed", error=repr(exc))
                self._settle(batch, {}, EngineUnavailable("internal write failure"))
            finally:
                self._idle_writers += 1

    async def _write_batch(self, batch: list[_Decided], idx: int) -> None:
        by_epoch: dict[str, list[_Decided]] = {}
        for d in batch:
            by_epoch.setdefault(d[2], []).append(d)
        for epoch, items in by_epoch.items():
            await self._commit_holds(epoch, items, idx)

    async def _commit_holds(self, epoch: str, items: list[_Decided], idx: int) -> None:
        committing = False
        outcome: dict[str, Reservation | Exception] | None = None
        events = 0
        started = time.perf_counter()
        conn: aiomysql.Connection | None = None
        try:
            for attempt in range(5):
                conn = await self._writer(idx)
                try:
                    async with conn.cursor() as cur:
                        batched = await asyncio.wait_for(
                            self._record_holds_batched(cur, epoch, items), self.db_timeout
                        )
                        if batched is not None:
                            finish, events = batched
                            committing = True
                            await asyncio.wait_for(_run_statements(cur, finish), self.db_timeout)
                        else:  # rolled back: a row was skipped; the general path sorts it out
                            outcome, events = await asyncio.wait_for(
                                self._record_holds(cur, epoch, items), self.db_timeout
                            )
                            committing = True
                            await asyncio.wait_for(conn.commit(), self.db_timeout)
                    break
                except pymysql.err.MySQLError as exc:
                    if committing or not _retryable(exc) or attempt == 4:
                        raise
                    # Deadlock / lock wait timeout: InnoDB rolled the whole batch back; run it again.
                    await conn.rollback()
                    await asyncio.sleep(0.002 * (attempt + 1))
        except _Fenced:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.rollback()
            self._settle(items, {}, EngineUnavailable("stock counters were rebuilt meanwhile; retry"))
            return
        except Exception as exc:
            broken = self._writer_conns[idx]
            if broken is not None:
                broken.close()
                self._writer_conns[idx] = None
            if _connection_trouble(exc):
                self._db_failed(exc)
            else:
                log.warning("group commit failed", error=repr(exc))
            if committing:
                # COMMIT was sent: the rows may or may not be in MySQL. Keep the holds (strict) and
                # settle them with tombstones once MySQL answers again.
                self._in_doubt.extend(d[0] for d in items)
                self.stats.in_doubt += len(items)
            else:
                await self._undo([d[0] for d in items], epoch)
            self._settle(items, {}, EngineUnavailable(f"database unavailable: {exc}"))
            return
        self.stats.write_batches += 1
        self.stats.written += len(items)
        self.stats.commit_seconds += time.perf_counter() - started
        if outcome is not None:
            undo = [res for res, *_ in items if outcome.get(res.reservation_id) is not res]
            if undo:
                await self._undo(undo, epoch)
        self._settle(items, outcome, None)
        if events and self.on_outbox is not None:  # most batches cross no threshold: no events
            self.on_outbox()

    def _settle(
        self,
        items: Sequence[_Decided],
        outcome: dict[str, Reservation | Exception] | None,
        error: Exception | None,
    ) -> None:
        """Answer the callers: ``error`` for all, else ``outcome`` per id (None: all recorded as decided)."""
        for res, fut, _, _ in items:
            if fut.done():
                continue
            if error is not None:
                fut.set_exception(error)
            elif outcome is None:
                fut.set_result(res)
            else:
                result = outcome.get(res.reservation_id, EngineUnavailable("not recorded"))
                if isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
        for b in {d[3] for d in items}:
            self._writing.discard(b)
            if not b.done():
                b.set_result(None)

    async def _undo(self, reservations: Sequence[Reservation], epoch: str) -> None:
        """Drop holds that are certainly not in MySQL (and their idempotency keys)."""
        args: list[Any] = [self.prefix, epoch, self._bucket(self.clock())]
        for r in reservations:
            args += (_member(r), "undo")
        try:
            await self._eval("apply_final", *args)
            self.stats.undone += len(reservations)
        except EngineUnavailable:
            pass  # Redis is being rebuilt from MySQL anyway

    async def _record_holds_batched(
        self, cur: aiomysql.Cursor, epoch: str, items: list[_Decided]
    ) -> tuple[str, int] | None:
        """``_record_holds`` for the common case in two round trips instead of six.

        One multi-statement sends the fence read, the reservation rows, the ledger rows and the locking
        read of the stock rows; the counters, outbox rows and COMMIT are returned as the second one (the
        caller sends it as the commit; returned with the number of outbox events). Every round trip costs
        the loaded event loop a turn and the server a send syscall, which made the group commit's six
        statements a visible share of the reservation path. When a row was skipped (a repeated
        idempotency key, a tombstoned id) the transaction is rolled back and None returned: the caller
        then runs the general path, which resolves conflicts row by row.
        """
        now = self.clock()
        rows = [d[0] for d in items]
        moves = _hold_moves(rows)
        skus = sorted(moves)  # fixed lock order: no deadlocks between writers
        with warnings.catch_warnings():  # a skipped duplicate is handled below, not a warning
            warnings.simplefilter("ignore")
            await cur.execute(
                "SELECT epoch FROM inv_meta WHERE id = 1 LOCK IN SHARE MODE;"
                f"{_RESERVATION_INSERT}{_reservation_values(rows, now)};"
                f"{_LEDGER_RESERVE}{_ledger_values(rows, now)};"
                f"SELECT {STOCK_COLUMNS} FROM inv_stock WHERE sku IN ({','.join(_q(s) for s in skus)})"
                " ORDER BY sku FOR UPDATE"
            )
            (db_epoch,) = await cur.fetchone()
            await cur.nextset()
            inserted = cur.rowcount
            await cur.nextset()  # the ledger rows
            await cur.nextset()
            stock_rows = await cur.fetchall()
        if str(db_epoch) != epoch:
            raise _Fenced
        if inserted != len(rows):
            await cur.connection.rollback()
            return None
        before = {s.sku: s for s in (stock_from_row(r) for r in stock_rows)}
        updates, events = self._counter_moves(before, moves, "reserve", now)
        at = _double(now)
        statements = [
            f"UPDATE inv_stock SET on_hand = {on_hand}, held = {held}, sold = {sold}, revision = {revision},"
            f" updated_at = {at} WHERE sku = {_q(sku)}"
            for on_hand, held, sold, revision, _, sku in updates
        ]
        if events:
            statements.append(
                "INSERT INTO inv_outbox (topic, msg_key, value) VALUES "
                + ",".join(f"({_q(topic)},{_q(key)},{_q(value)})" for topic, key, value in events)
            )
        statements.append("COMMIT")
        return ";".join(statements), len(events)

    async def _record_holds(
        self, cur: aiomysql.Cursor, epoch: str, items: list[_Decided]
    ) -> tuple[dict[str, Reservation | Exception] | None, int]:
        """Inside the writer transaction: fence, rows, duplicates, ledger, counters, outbox.

        Returns (None when every row went in as decided, else the outcome per reservation id; the
        number of outbox events written)."""
        await cur.execute("SELECT epoch FROM inv_meta WHERE id = 1 LOCK IN SHARE MODE")
        (db_epoch,) = await cur.fetchone()
        if str(db_epoch) != epoch:
            raise _Fenced
        now = self.clock()
        values = _reservation_values([d[0] for d in items], now)
        with warnings.catch_warnings():  # a skipped duplicate is handled below, not a warning
            warnings.simplefilter("ignore")
            inserted = await cur.execute(_RESERVATION_INSERT + values)
        outcome: dict[str, Reservation | Exception] | None = None
        accepted = items
        if inserted != len(items):
            outcome = {res.reservation_id: res for res, *_ in items}
            accepted = await self._resolve_conflicts(cur, items, outcome)
        if not accepted:
            return outcome, 0
        await cur.execute(_LEDGER_RESERVE + _ledger_values([d[0] for d in accepted], now))
        events = await self._move_counters(
            cur, _hold_moves([d[0] for d in accepted]), reason="reserve", now=now
        )
        return outcome, events

    async def _resolve_conflicts(
        self, cur: aiomysql.Cursor, items: list[_Decided], outcome: dict[str, Reservation | Exception]
    ) -> list[_Decided]:
        """Rows INSERT IGNORE skipped: an idempotency key already in MySQL, or a tombstoned id."""
        ids = ",".join(f"'{d[0].reservation_id}'" for d in items)
        keys = ",".join(_q(d[0].idempotency_key) for d in items)
        await cur.execute(
            f"SELECT {RESERVATION_COLUMNS} FROM inv_reservations"
            f" WHERE id IN ({ids}) OR idempotency_key IN ({keys})"
        )
        rows = [reservation_from_row(r) for r in await cur.fetchall()]
        by_id = {r.reservation_id: r for r in rows}
        by_key = {r.idempotency_key: r for r in rows}
        accepted: list[_Decided] = []
        for d in items:
            mine = d[0]
            row = by_id.get(mine.reservation_id)
            if row is not None and row.idempotency_key == mine.idempotency_key:
                accepted.append(d)
                continue
            if row is not None:  # tombstoned by a sweeper: this hold was given up
                outcome[mine.reservation_id] = EngineUnavailable(
                    "reservation timed out before it was recorded"
                )
                continue
            existing = by_key.get(mine.idempotency_key)
            if existing is not None and existing.matches(
                ReserveRequest(
                    sku=mine.sku,
                    quantity=mine.quantity,
                    customer_id=mine.customer_id,
                    idempotency_key=mine.idempotency_key,
                )
            ):
                outcome[mine.reservation_id] = existing
            else:
                outcome[mine.reservation_id] = IdempotencyConflict(
                    "Idempotency-Key already used for a different reservation"
                )
        return accepted

    async def _move_counters(
        self,
        cur: aiomysql.Cursor,
        deltas: dict[str, tuple[int, int, int]],
        *,
        reason: str,
        now: float,
    ) -> int:
        """Apply (d_on_hand, d_held, d_sold) per SKU under row locks; write events to the outbox.

        Returns the number of outbox events written."""
        skus = sorted(deltas)  # fixed lock order: no deadlocks between writers
        placeholders = ",".join(["%s"] * len(skus))
        await cur.execute(
            f"SELECT {STOCK_COLUMNS} FROM inv_stock WHERE sku IN ({placeholders}) ORDER BY sku FOR UPDATE",
            skus,
        )
        before = {s.sku: s for s in (stock_from_row(r) for r in await cur.fetchall())}
        updates, events = self._counter_moves(before, deltas, reason, now)
        await cur.executemany(
            "UPDATE inv_stock SET on_hand = %s, held = %s, sold = %s, revision = %s, updated_at = %s"
            " WHERE sku = %s",
            updates,
        )
        if events:
            await cur.executemany(
                "INSERT INTO inv_outbox (topic, msg_key, value) VALUES (%s, %s, %s)", events
            )
        return len(events)

    def _counter_moves(
        self,
        before: dict[str, StockLevel],
        deltas: dict[str, tuple[int, int, int]],
        reason: str,
        now: float,
    ) -> tuple[list[tuple[Any, ...]], list[tuple[str, str, str]]]:
        """The UPDATE parameters (sorted by SKU) and outbox rows of moving the locked counters."""
        updates: list[tuple[Any, ...]] = []
        events: list[tuple[str, str, str]] = []
        for sku in sorted(deltas):
            b = before.get(sku)
            if b is None:
                raise RuntimeError(f"stock row for {sku!r} missing")
            d_on, d_held, d_sold = deltas[sku]
            a = StockLevel(
                sku=sku,
                on_hand=b.on_hand + d_on,
                held=b.held + d_held,
                sold=b.sold + d_sold,
                per_customer_limit=b.per_customer_limit,
                revision=b.revision + 1,
                warehouses=b.warehouses,
            )
            updates.append((a.on_hand, a.held, a.sold, a.revision, now, sku))
            events += _text_rows(
                outbox_rows(b, a, reason=reason, low_stock_threshold=self.low_stock_threshold)
            )
        return updates, events

    # transitions: MySQL first, then Redis --------------------------------------------------------------

    async def _finish(
        self, cur: aiomysql.Cursor, holds: Sequence[Reservation], final: Status, now: float
    ) -> None:
        """held -> final for rows locked by the caller: rows, ledger, counters, outbox."""
        if not holds:
            return
        ids = ",".join(f"'{r.reservation_id}'" for r in holds)
        await cur.execute(
            f"UPDATE inv_reservations SET status = %s, updated_at = %s"
            f" WHERE id IN ({ids}) AND status = 'held'",
            (final.value, now),
        )
        d_sold = 1 if final is Status.CONFIRMED else 0
        ledger = ",".join(
            f"({_q(r.sku)},'{final.value}',0,{-r.quantity},{d_sold * r.quantity},"
            f"'{r.reservation_id}',{now!r})"
            for r in holds
        )
        await cur.execute(
            "INSERT INTO inv_ledger (sku, kind, d_on_hand, d_held, d_sold, reservation_id, at) VALUES "
            + ledger
        )
        deltas: dict[str, tuple[int, int, int]] = {}
        for r in holds:
            _, h, s = deltas.get(r.sku, (0, 0, 0))
            deltas[r.sku] = (0, h - r.quantity, s + d_sold * r.quantity)
        await self._move_counters(cur, deltas, reason=final.value, now=now)

    async def _apply(self, finals: Sequence[tuple[str, str]]) -> None:
        """Best effort: a miss leaves Redis stricter than MySQL, which the sweeper/reconcile repairs."""
        epoch = self._epoch
        if not finals or epoch is None:
            return
        args: list[Any] = [self.prefix, epoch, self._bucket(self.clock())]
        for pair in finals:
            args += pair
        with contextlib.suppress(EngineUnavailable):
            await self._eval("apply_final", *args)
        if self.on_outbox is not None:
            self.on_outbox()

    async def _locked_reservation(self, cur: aiomysql.Cursor, rid: str) -> Reservation:
        await cur.execute(
            f"SELECT {RESERVATION_COLUMNS} FROM inv_reservations WHERE id = %s FOR UPDATE", (rid,)
        )
        row = await cur.fetchone()
        if row is None or row[7].startswith(LOST_PREFIX):
            raise ReservationNotFound(rid)
        return reservation_from_row(row)

    async def confirm(self, reservation_id: str) -> Reservation:
        self._check_db()
        now = self.clock()

        async def attempt() -> tuple[Reservation, Status]:
            async with self._txn() as cur:
                res = await self._locked_reservation(cur, reservation_id)
                final = decide_confirm(res, now)
                if res.status is Status.HELD:
                    await self._finish(cur, [res], final, now)
            return res, final

        res, final = await self._retry(attempt)
        await self._apply([(_member(res), final.value)])
        if final is not Status.CONFIRMED:
            raise InvalidTransition(reservation_id, final, "confirm")
        return _with_status(res, final)

    async def release(self, reservation_id: str) -> Reservation:
        self._check_db()
        now = self.clock()

        async def attempt() -> tuple[Reservation, Status]:
            async with self._txn() as cur:
                res = await self._locked_reservation(cur, reservation_id)
                final = decide_release(res)
                if res.status is Status.HELD:
                    await self._finish(cur, [res], final, now)
            return res, final

        res, final = await self._retry(attempt)
        await self._apply([(_member(res), final.value)])
        return _with_status(res, final)

    def _check_db(self) -> None:
        if not self._started:
            raise EngineUnavailable("inventory engine not started")
        if not self._db_ok:
            raise EngineUnavailable(f"database unavailable: {self._db_error}")

    async def expire_due(self, now: float | None = None, limit: int = 1000) -> int:
        """Sweep: due holds from Redis' expiry index, recorded in MySQL first, then applied.

        The index is complete: every hold in MySQL was added to it when decided, and reconcile
        rebuilds it from MySQL's held rows, so MySQL itself is never scanned for due holds.
        """
        self._check_db()
        at = self.clock() if now is None else now
        epoch = self._epoch
        candidates: dict[str, float] = {}
        if epoch is not None:
            raw = await self._eval("due", self.prefix, epoch, repr(at), limit)
            if raw != "NOTREADY":
                candidates = {raw[i]: float(raw[i + 1]) for i in range(0, len(raw), 2)}
        expired, finals = await self._settle_holds(candidates, at, expire_before=at)
        await self._apply(finals)
        self.stats.expired += expired
        return expired

    async def _settle_holds(
        self, candidates: dict[str, float], now: float, *, expire_before: float | None
    ) -> tuple[int, list[tuple[str, str]]]:
        """Resolve Redis holds against MySQL: expire due ones, tombstone ones MySQL never got.

        Returns (expired count, apply_final triples for Redis). A hold is tombstoned only after
        ``lost_grace`` past its expiry so an in-flight group commit is not raced in normal operation;
        even if it is, the tombstone wins and the late commit is refused (see invariant 3).
        """
        if not candidates:
            return 0, []
        return await self._retry(lambda: self._settle_holds_once(candidates, now, expire_before))

    async def _settle_holds_once(
        self, candidates: dict[str, float], now: float, expire_before: float | None
    ) -> tuple[int, list[tuple[str, str]]]:
        """``candidates``: expiry-index member ("rid sku customer qty idem") -> expires_at."""
        rid_of = {member: member.split(" ", 1)[0] for member in candidates}
        ids = ",".join(f"'{rid}'" for rid in sorted(rid_of.values()))
        finals: list[tuple[str, str]] = []
        expired = 0
        async with self._txn() as cur:
            lost = (
                [rid_of[m] for m, exp in candidates.items() if exp + self.lost_grace <= now]
                if expire_before
                else list(rid_of.values())
            )
            if lost:
                tomb = ",".join(
                    f"('{rid}','{LOST_PREFIX}{rid}','-','-',0,'expired',{now!r},{now!r},{now!r})"
                    for rid in lost
                )
                with warnings.catch_warnings():  # "Duplicate entry" for every real row: expected
                    warnings.simplefilter("ignore")
                    await cur.execute(
                        "INSERT IGNORE INTO inv_reservations (id, idempotency_key, sku, customer_id,"
                        " quantity, status, expires_at, created_at, updated_at) VALUES " + tomb
                    )
            await cur.execute(
                f"SELECT {RESERVATION_COLUMNS} FROM inv_reservations"
                f" WHERE id IN ({ids}) ORDER BY id FOR UPDATE"
            )
            rows = {r.reservation_id: r for r in (reservation_from_row(x) for x in await cur.fetchall())}
            to_expire: list[Reservation] = []
            for member, rid in rid_of.items():
                row = rows.get(rid)
                if row is None:
                    continue  # not yet recorded and not yet past grace: look again next sweep
                if row.idempotency_key.startswith(LOST_PREFIX):
                    finals.append((member, "undo"))
                    self.stats.tombstoned += 1
                elif row.status is Status.HELD:
                    if expire_before is not None and row.expires_at <= expire_before:
                        to_expire.append(row)
                        finals.append((member, Status.EXPIRED.value))
                else:
                    finals.append((member, row.status.value))
            await self._finish(cur, to_expire, Status.EXPIRED, now)
            expired = len(to_expire)
        return expired, finals

    # stock levels: restrict Redis, commit MySQL, then set Redis exactly ---------------------------------

    async def set_on_hand(
        self, sku: str, on_hand: int, *, per_customer_limit: int | None = None, reason: str = "admin"
    ) -> StockLevel:
        validate_identifier(sku, "sku")
        validate_on_hand(on_hand)
        validate_limit(per_customer_limit)
        result = await self._set_stock(sku, on_hand, per_customer_limit, reason, None, None)
        assert result is not None
        return result

    async def adjust_from_feed(
        self, sku: str, warehouses: dict[str, int], *, feed_revision: int
    ) -> StockLevel | None:
        validate_identifier(sku, "sku")
        on_hand = validate_on_hand(sum(warehouses.values()))
        return await self._set_stock(sku, on_hand, None, "feed", dict(warehouses), feed_revision)

    async def _set_stock(self, *args: Any) -> StockLevel | None:
        self._check_db()
        return await self._retry(lambda: self._set_stock_once(*args))

    async def _set_stock_once(
        self,
        sku: str,
        on_hand: int,
        limit: int | None,
        reason: str,
        warehouses: dict[str, int] | None,
        feed_revision: int | None,
    ) -> StockLevel | None:
        now = self.clock()
        rebuild = False
        async with self._txn() as cur:
            await cur.execute(
                f"SELECT {STOCK_COLUMNS}, feed_revision FROM inv_stock WHERE sku = %s FOR UPDATE", (sku,)
            )
            row = await cur.fetchone()
            before = stock_from_row(row[:7]) if row else None
            if feed_revision is not None and row is not None and feed_revision <= int(row[7]):
                return None
            base = before or StockLevel(sku=sku)
            after = StockLevel(
                sku=sku,
                on_hand=on_hand,
                held=base.held,
                sold=base.sold,
                per_customer_limit=effective_limit(base.per_customer_limit, limit),
                revision=base.revision + 1,
                warehouses=warehouses if warehouses is not None else base.warehouses,
            )
            lim = -1 if after.per_customer_limit is None else after.per_customer_limit
            epoch = self._epoch
            if epoch is not None:  # make Redis strict before MySQL changes (we hold the row lock)
                if await self._eval("stock_pre", self.prefix, epoch, sku, on_hand, lim) == "REBUILD":
                    rebuild = True
                    self._lost("per-customer limit introduced (its counts are rebuilt)")
            await cur.execute(
                """INSERT INTO inv_stock (sku, on_hand, held, sold, per_customer_limit, revision,
                       feed_revision, warehouses, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON DUPLICATE KEY UPDATE on_hand = VALUES(on_hand),
                       per_customer_limit = VALUES(per_customer_limit), revision = VALUES(revision),
                       feed_revision = VALUES(feed_revision),
                       warehouses = VALUES(warehouses), updated_at = VALUES(updated_at)""",
                (
                    sku,
                    after.on_hand,
                    after.held,
                    after.sold,
                    after.per_customer_limit,
                    after.revision,
                    feed_revision if feed_revision is not None else (int(row[7]) if row else -1),
                    json.dumps(after.warehouses) if after.warehouses is not None else None,
                    now,
                ),
            )
            await cur.execute(
                "INSERT INTO inv_ledger (sku, kind, d_on_hand, d_held, d_sold, reservation_id, at)"
                " VALUES (%s, %s, %s, 0, 0, NULL, %s)",
                (sku, reason, after.on_hand - base.on_hand, now),
            )
            events = _text_rows(
                outbox_rows(before, after, reason=reason, low_stock_threshold=self.low_stock_threshold)
            )
            if events:
                await cur.executemany(
                    "INSERT INTO inv_outbox (topic, msg_key, value) VALUES (%s, %s, %s)", events
                )
        epoch = self._epoch
        if epoch is not None:
            with contextlib.suppress(EngineUnavailable):
                post = await self._eval(
                    "stock_post",
                    self.prefix,
                    epoch,
                    sku,
                    after.on_hand,
                    lim,
                    after.revision,
                    after.held,
                    after.sold,
                )
                if post == "REBUILD":
                    rebuild = True
                    self._lost("per-customer limit introduced (its counts are rebuilt)")
        if rebuild:  # answer once reservations are decided again (bounded: the change is committed)
            task = self._reconcile_task
            if task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(task), self.db_timeout)
        if self.on_outbox is not None:
            self.on_outbox()
        return after

    # reads (MySQL: what has been acknowledged) -----------------------------------------------------

    async def get_stock(self, sku: str) -> StockLevel:
        self._check_db()
        async with self._txn() as cur:
            await cur.execute(f"SELECT {STOCK_COLUMNS} FROM inv_stock WHERE sku = %s", (sku,))
            row = await cur.fetchone()
        if row is None:
            raise UnknownSku(sku)
        return stock_from_row(row)

    async def get_reservation(self, reservation_id: str) -> Reservation:
        self._check_db()
        async with self._txn() as cur:
            await cur.execute(
                f"SELECT {RESERVATION_COLUMNS} FROM inv_reservations WHERE id = %s", (reservation_id,)
            )
            row = await cur.fetchone()
        if row is None or row[7].startswith(LOST_PREFIX):
            raise ReservationNotFound(reservation_id)
        return reservation_from_row(row)

    async def fast_path_stock(self, sku: str) -> StockLevel | None:
        """Redis' view of a SKU (for tests, the benchmark and operators); None when absent/not ready."""
        epoch = self._epoch
        if epoch is None:
            return None
        vals: list[Any] = await self._redis.hmget(self._k(epoch, "s", sku), "oh", "h", "so", "lim", "rev")
        if vals[0] is None:
            return None
        lim = int(vals[3])
        return StockLevel(
            sku=sku,
            on_hand=int(vals[0]),
            held=int(vals[1]),
            sold=int(vals[2]),
            per_customer_limit=None if lim < 0 else lim,
            revision=int(vals[4]),
        )

    # outbox (read by events.OutboxRelay) ----------------------------------------------------------------

    async def outbox_fetch(self, limit: int) -> list[tuple[int, str, str, bytes]]:
        async with self._txn() as cur:
            await cur.execute(
                "SELECT id, topic, msg_key, value FROM inv_outbox ORDER BY id LIMIT %s", (limit,)
            )
            rows = await cur.fetchall()
        return [(int(i), t, k, bytes(v)) for i, t, k, v in rows]

    async def outbox_delete(self, ids: Sequence[int]) -> None:
        if ids:
            async with self._txn() as cur:
                await cur.execute(
                    f"DELETE FROM inv_outbox WHERE id IN ({','.join(str(int(i)) for i in ids)})"
                )

    # reconcile ---------------------------------------------------------------------------------------

    async def reconcile(self) -> ReconcileReport:
        """Rebuild Redis from MySQL under a new epoch (see invariant 4). Safe to run any time."""
        async with self._reconcile_lock:
            started = time.perf_counter()
            for attempt in range(5):
                try:
                    report = await self._rebuild()
                    break
                except _Conflict:  # deadlock with a concurrent transition: rolled back, go again
                    if attempt == 4:
                        raise EngineUnavailable("reconcile kept deadlocking; retry") from None
                    await asyncio.sleep(0.05 * (attempt + 1))
            self.stats.reconciles += 1
            log.info(
                "inventory reconciled",
                epoch=report.epoch,
                skus=report.skus,
                held=report.held_reservations,
                seconds=round(time.perf_counter() - started, 3),
            )
        # Holds stranded by a crash (in Redis before, never recorded) are now gone; settle in-doubt ones.
        with contextlib.suppress(EngineUnavailable):
            await self._settle_in_doubt()
        return msgspec.structs.replace(report, seconds=time.perf_counter() - started)

    async def _rebuild(self) -> ReconcileReport:
        self._epoch = None
        try:
            await self._redis.delete(self._k("ready"))  # every process stops deciding now
            await self._load_scripts()
        except _RedisError as exc:
            raise EngineUnavailable(f"redis unavailable: {exc}") from exc
        kwargs = self.mysql.pymysql_kwargs()
        conn = await aiomysql.connect(
            host=kwargs["host"],
            port=kwargs["port"],
            user=kwargs["user"],
            password=kwargs["password"],
            db=kwargs["database"],
            autocommit=False,
            charset="utf8mb4",
            connect_timeout=3,
        )
        lock = f"inv_reconcile:{self.prefix}"
        now = self.clock()
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT GET_LOCK(%s, 60)", (lock,))
                try:
                    await cur.execute("UPDATE inv_meta SET epoch = epoch + 1 WHERE id = 1")
                    await cur.execute("SELECT epoch FROM inv_meta WHERE id = 1")
                    (epoch_n,) = await cur.fetchone()
                    await cur.execute(f"SELECT {STOCK_COLUMNS} FROM inv_stock LOCK IN SHARE MODE")
                    stocks = [stock_from_row(r) for r in await cur.fetchall()]
                    await cur.execute(
                        "SELECT id, sku, customer_id, quantity, expires_at, idempotency_key"
                        " FROM inv_reservations WHERE status = 'held' LOCK IN SHARE MODE"
                    )
                    holds = await cur.fetchall()
                    await cur.execute(
                        "SELECT sku, customer_id, SUM(quantity) FROM inv_reservations"
                        " WHERE status IN ('held', 'confirmed') GROUP BY sku, customer_id"
                    )
                    customers = await cur.fetchall()
                    bucket = self._bucket(now)
                    await cur.execute(
                        "SELECT idempotency_key, id, created_at FROM inv_reservations WHERE created_at >= %s",
                        ((bucket - 1) * self.idempotency_ttl,),
                    )
                    idem = [r for r in await cur.fetchall() if not r[0].startswith(LOST_PREFIX)]
                    await conn.commit()
                finally:
                    with contextlib.suppress(Exception):
                        await cur.execute("SELECT RELEASE_LOCK(%s)", (lock,))
        except _DB_ERRORS as exc:
            if _retryable(exc):
                raise _Conflict from exc
            if _connection_trouble(exc):
                self._db_failed(exc)
            raise EngineUnavailable(f"database unavailable: {exc}") from exc
        finally:
            conn.close()
        self._db_ok = True
        epoch = str(epoch_n)
        base = self._k(epoch)
        try:
            pipe = self._redis.pipeline(transaction=False)
            n = 0

            async def flush(force: bool = False) -> None:
                nonlocal pipe, n
                if n >= 2000 or (force and n):
                    await pipe.execute()
                    pipe = self._redis.pipeline(transaction=False)
                    n = 0

            for s in stocks:
                pipe.hset(
                    f"{base}:s:{s.sku}",
                    mapping={
                        "oh": s.on_hand,
                        "h": s.held,
                        "so": s.sold,
                        "rev": s.revision,
                        "lim": -1 if s.per_customer_limit is None else s.per_customer_limit,
                    },
                )
                n += 1
                await flush()
            for rid, sku, cust, qty, exp, key in holds:
                pipe.zadd(f"{base}:x", {f"{rid} {sku} {cust} {int(qty)} {key}": float(exp)})
                n += 1
                await flush()
            limited = {s.sku for s in stocks if s.per_customer_limit is not None}
            for sku, cust, total in customers:
                if sku in limited:  # counts are kept only for SKUs with a limit
                    pipe.hset(f"{base}:c:{sku}", cust, int(total))
                    n += 1
                    await flush()
            buckets: set[int] = set()
            for key, rid, created_at in idem:
                b = self._bucket(float(created_at))
                buckets.add(b)
                pipe.hset(f"{base}:i:{b}", key, rid)
                n += 1
                await flush()
            for b in buckets:
                pipe.expire(f"{base}:i:{b}", int((b + 3) * self.idempotency_ttl - now) + 1)
            await flush(force=True)
            await self._redis.set(self._k("ready"), epoch)
        except _RedisError as exc:
            raise EngineUnavailable(f"redis unavailable during rebuild: {exc}") from exc
        self._epoch = epoch
        gc = asyncio.create_task(self._collect_garbage(epoch))
        self._active.add(gc)
        gc.add_done_callback(self._active.discard)
        return ReconcileReport(epoch=int(epoch_n), skus=len(stocks), held_reservations=len(holds))

    async def _collect_garbage(self, current: str) -> None:
        """Unlink keys of older epochs (they are unreachable once ``ready`` moved on)."""
        try:
            start = len(self.prefix) + 1
            stale: list[str] = []
            async for key in self._redis.scan_iter(match=f"{self.prefix}:*", count=1000):
                epoch = key[start:].split(":", 1)[0]
                if epoch.isdigit() and epoch != current:
                    stale.append(key)
                if len(stale) >= 500:
                    await self._redis.unlink(*stale)
                    stale.clear()
            if stale:
                await self._redis.unlink(*stale)
        except _RedisError as exc:
            log.warning("old epoch cleanup failed", error=repr(exc))

    async def _settle_in_doubt(self) -> None:
        if not self._in_doubt:
            return
        pending, self._in_doubt = self._in_doubt, []
        try:
            _, finals = await self._settle_holds(
                {_member(r): 0.0 for r in pending}, self.clock(), expire_before=None
            )
        except EngineUnavailable:
            self._in_doubt.extend(pending)
            raise
        await self._apply(finals)

    # background loops ---------------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        assert self.sweep_interval
        while True:
            await asyncio.sleep(self.sweep_interval)
            if not self._db_ok or self._epoch is None:
                continue
            try:
                await self.expire_due()
                await self._drop_old_idempotency()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("inventory sweep failed", error=repr(exc))

    async def _drop_old_idempotency(self) -> None:
        """UNLINK idempotency buckets that no decision reads any more: freed off Redis' main thread,
        where their own (fallback) expiry would free a big hash synchronously."""
        epoch = self._epoch
        if epoch is None:
            return
        bucket = self._bucket(self.clock())
        with contextlib.suppress(_RedisError):
            await self._redis.unlink(
                self._k(epoch, "i", str(bucket - 2)), self._k(epoch, "i", str(bucket - 3))
            )

    async def _monitor_loop(self) -> None:
        """Detect Redis loss/restart and MySQL recovery between requests."""
        while True:
            await asyncio.sleep(self.monitor_interval)
            try:
                await self._monitor_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("inventory monitor failed", error=repr(exc))

    async def _monitor_once(self) -> None:
        try:
            info = await self._redis.info("server")
            ready = await self._redis.get(self._k("ready"))
        except _RedisError as exc:
            self._lost(f"redis error: {exc!r}")
            return
        if self._run_id is not None and str(info.get("run_id")) != self._run_id:
            self._lost("redis restarted (run_id changed)")
        elif self._epoch is not None and ready != self._epoch:
            if ready is None:
                self._lost("ready marker missing")
            else:
                self._epoch = str(ready)  # another process reconciled
        elif self._epoch is None:
            self._schedule_reconcile()
        if not self._db_ok or self._in_doubt:
            try:
                async with self._txn() as cur:
                    await cur.execute("SELECT 1")
                self._db_ok = True
                await self._settle_in_doubt()
            except EngineUnavailable:
                pass


def _fail_all(futures: Any, exc: Exception) -> None:
    for fut in futures:
        if not fut.done():
            fut.set_exception(exc)


def _hold_moves(holds: Sequence[Reservation]) -> dict[str, tuple[int, int, int]]:
    """Counter moves (d_on_hand, d_held, d_sold) per SKU of recording new holds."""
    held: dict[str, int] = {}
    for res in holds:
        held[res.sku] = held.get(res.sku, 0) + res.quantity
    return {sku: (0, q, 0) for sku, q in held.items()}


async def _run_statements(cur: aiomysql.Cursor, statements: str) -> None:
    """Send a multi-statement and read every result (a failing statement raises, the rest is skipped)."""
    await cur.execute(statements)
    while await cur.nextset():
        pass


def _text_rows(rows: Sequence[tuple[str, str, bytes]]) -> list[tuple[str, str, str]]:
    # aiomysql 0.3 cannot escape bytes parameters with PyMySQL 1.2; the envelope is UTF-8 JSON anyway.
    return [(topic, key, value.decode()) for topic, key, value in rows]


def _member(r: Reservation) -> str:
    """A hold's member in the Redis expiry index (the same string reserve_batch.lua writes)."""
    return f"{r.reservation_id} {r.sku} {r.customer_id} {r.quantity} {r.idempotency_key}"


def _with_status(res: Reservation, status: Status) -> Reservation:
    return msgspec.structs.replace(res, status=status)


async def migrate_mysql(target: MysqlTarget) -> list[int]:
    """Apply pending migrations (idempotent; serialized across processes by a named lock)."""
    kwargs = target.pymysql_kwargs()
    database = str(kwargs.pop("database"))
    conn = await aiomysql.connect(
        host=kwargs["host"],
        port=kwargs["port"],
        user=kwargs["user"],
        password=kwargs["password"],
        autocommit=True,
        charset="utf8mb4",
        connect_timeout=5,
    )
    done: list[int] = []
    try:
        async with conn.cursor() as cur:
            with warnings.catch_warnings():  # "database exists" is the normal case
                warnings.simplefilter("ignore")
                await cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
            await cur.execute(f"USE `{database}`")
            await cur.execute("SELECT GET_LOCK('inv_migrate', 60)")
            try:
                with warnings.catch_warnings():  # "already exists" is the normal case
                    warnings.simplefilter("ignore")
                    await cur.execute(schema.version_table_ddl("mysql"))
                await cur.execute(f"SELECT version FROM {schema.VERSION_TABLE}")
                applied = {int(r[0]) for r in await cur.fetchall()}
                for version, statements in schema.pending("mysql", applied):
                    for statement in statements:  # DDL auto-commits in MySQL; statements are idempotent
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            await cur.execute(statement)
                    await cur.execute(
                        f"INSERT INTO {schema.VERSION_TABLE} (version, applied_at) VALUES (%s, %s)",
                        (version, time.time()),
                    )
                    done.append(version)
            finally:
                await cur.execute("SELECT RELEASE_LOCK('inv_migrate')")
    finally:
        conn.close()
    return done
