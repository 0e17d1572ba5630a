"""ClusterEngine: Redis decides (Lua), MySQL/MariaDB remembers (group commit), reconcile heals.

Crash invariants (why a flash sale never oversells and no acknowledged reservation is lost):

1. **MySQL is the truth; Redis may only be stricter.** Redis' ``available`` never exceeds MySQL's.
   Taking stock is decided in Redis first and recorded in MySQL after; giving it back (release,
   expire, raising on-hand) is committed in MySQL first and applied to Redis after. A crash between
   the two steps leaves Redis too strict (undersell), never too loose. Setting on-hand lowers Redis
   to min(old, new) under the row lock, commits, then sets the exact value fenced by the stock
   revision (``stock``).
2. **No answer before COMMIT.** A reservation is acknowledged only after the transaction recording
   it (row, ledger, counters, outbox events) committed. Decisions are batched per EVALSHA
   (``batcher``) and written one transaction per batch by a few writers (``group_commit``); a
   deadlock rolls the batch back and it runs again.
3. **A failed write is undone exactly once.** Failed before COMMIT: nothing is in MySQL and the Redis
   holds are dropped (``undo``). COMMIT itself failed: the holds stay (strict) and are settled once
   MySQL answers, by a *tombstone* (``INSERT IGNORE`` of a placeholder row with the same primary key):
   the real row wins, or the tombstone does and a late commit of the real row is refused. The sweeper
   settles holds that Redis has and MySQL never got the same way. A hold *is* its member in the Redis
   expiry index, so ending it is a ZREM that moves stock only for the caller that removed it.
4. **Epochs fence stale state.** Keys live under ``<prefix>:<epoch>:`` and ``<prefix>:ready`` names
   the complete epoch. A flush, a restart (changed ``run_id``, lost scripts) or a Redis error makes
   every script answer ``not_ready`` and the engine answer 503 while ``reconcile`` rebuilds the
   counters from MySQL under a new epoch (bumped in MySQL first, which fences old-epoch batches).
   Run the fast-path Redis without persistence: a rebuild from MySQL is the recovery. Only a real
   loss rebuilds: a start adopts a consistent ``ready`` epoch, and engines starting together (or all
   seeing one loss) rebuild once (``reconcile``). A killed process's undurable holds are then settled
   by a retry of their key (``batcher``, after ``STRANDED_AFTER_S``) or by the sweeper past expiry.
5. **Idempotency:** a key maps to one reservation in Redis (decided atomically with the hold) and in
   MySQL (UNIQUE); a retry is answered from MySQL once the original is durable.
6. **Per-customer counts** are kept in Redis only for SKUs with a limit; introducing a limit stops
   decisions and reconciles first, so decisions never use counts that were not rebuilt.

Every reservation is answered within ``reserve_deadline`` seconds (a retryable 503 past it).
Single Redis primary: scripts touch keys they compute, so this adapter does not run on Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import RedisError

from inventory.cluster import sql
from inventory.cluster.batcher import ReserveBatcher
from inventory.cluster.database import Database
from inventory.cluster.fast_path import FastPath
from inventory.cluster.group_commit import GroupCommit
from inventory.cluster.groups import GroupReserver
from inventory.cluster.keys import Script, ScriptAnswer
from inventory.cluster.monitor import Monitor
from inventory.cluster.reconcile import Reconciler
from inventory.cluster.records import BackgroundTasks, Stats
from inventory.cluster.stock import StockChange, StockWriter
from inventory.cluster.sweeper import Sweeper
from inventory.cluster.transitions import Transitions
from inventory.domain import (
    DEFAULT_LOW_STOCK_THRESHOLD,
    EngineUnavailable,
    InventoryError,
    ReconcileReport,
    Reservation,
    ReservationNotFound,
    ReserveRequest,
    StockLevel,
    UnknownSku,
    decide_set_stock,
    validate_reserve,
    validate_set_stock,
    validate_sku,
)
from inventory.events import OutboxEntry
from inventory.feed_stock import FeedOutcome, FeedStock, decide_feed_change, latest_per_sku
from inventory.groups import GroupReserveRequest, validate_group
from inventory.schema import migrate_mysql
from inventory.sql_common import RESERVATION_COLUMNS, STOCK_COLUMNS, reservation_from_row, stock_from_row
from inventory.warehouse_rows import WarehouseRowsBatch
from kernel.contracts.stock import WarehouseQuantity, WarehouseStockOutcome
from kernel.database import MysqlTarget
from kernel.tasks import cancel_and_wait

STOCK_FEED_CONCURRENCY = 16  # SKU transactions of one stock-feed batch in flight at once


class ClusterEngine:
    """ReservationEngine over Redis (fast path) + MySQL/MariaDB (truth)."""

    # A reservation's rate-limit windows (``ReserveRequest.windows``, keys in this engine's Redis) are
    # counted by the reserve script itself, in the round trip that decides the hold.
    counts_limit_windows = True

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
        group_writers: int = 3,
        max_group_batch: int = 500,
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
        self.on_outbox = on_outbox
        self.stats = Stats()
        self.background = BackgroundTasks()
        self._tasks: list[asyncio.Task[Any]] = []
        self._started = False
        self._stock_reads = asyncio.Semaphore(8)
        in_doubt: list[Reservation] = []  # holds whose COMMIT had an unknown outcome
        self.db = Database(mysql, timeout=db_timeout)
        self.fast_path = FastPath(
            redis_url, self.prefix, idempotency_ttl=idempotency_ttl, on_lost=self._schedule_reconcile
        )
        self.group_commit = GroupCommit(
            self.db, self.fast_path, clock=clock, stats=self.stats, in_doubt=in_doubt,
            notify_outbox=self._notify_outbox, writers=writers, spill=write_spill,
            max_batch=max_write_batch, low_stock_threshold=low_stock_threshold,
        )  # fmt: skip
        self.batcher = ReserveBatcher(
            self.fast_path, self.group_commit, check_open=self._check_open, lookup=self.get_reservation,
            clock=clock, stats=self.stats, tasks=self.background, max_batch=max_batch,
            max_inflight=max_inflight, spill=dispatch_spill, deadline=reserve_deadline,
            settle_timeout=db_timeout, settle_lost=lambda member: self.sweeper.settle_lost(member),
        )  # fmt: skip
        self.transitions = Transitions(
            self.db, self.fast_path, clock=clock, notify_outbox=self._notify_outbox,
            low_stock_threshold=low_stock_threshold,
        )  # fmt: skip
        self.sweeper = Sweeper(
            self.db, self.fast_path, self.transitions, check_db=self._check_db, clock=clock,
            stats=self.stats, in_doubt=in_doubt, lost_grace=lost_grace, interval=sweep_interval,
        )  # fmt: skip
        self.reconciler = Reconciler(
            self.db, self.fast_path, self.sweeper, is_running=lambda: self._started, clock=clock,
            stats=self.stats, tasks=self.background,
        )  # fmt: skip
        self.monitor = Monitor(
            self.db, self.fast_path, self.sweeper, schedule_reconcile=self._schedule_reconcile,
            interval=monitor_interval,
        )  # fmt: skip
        # A checkout's lines (all or nothing): their own Lua batches and writer connections (``groups``).
        self.group_writes = GroupCommit(
            self.db, self.fast_path, clock=clock, stats=self.stats, in_doubt=in_doubt,
            notify_outbox=self._notify_outbox, writers=group_writers, spill=write_spill,
            max_batch=max_write_batch, low_stock_threshold=low_stock_threshold,
        )  # fmt: skip
        self.groups = GroupReserver(
            self.fast_path, self.db, self.group_writes, self.transitions, check_open=self._check_open,
            clock=clock, stats=self.stats, tasks=self.background, max_batch=max_group_batch,
        )  # fmt: skip
        self.stock = StockWriter(
            self.db, self.fast_path, wait_for_reconcile=self.reconciler.wait_running, clock=clock,
            notify_outbox=self._notify_outbox, low_stock_threshold=low_stock_threshold,
        )  # fmt: skip

    # lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.migrate()
        await self.db.open()
        await self.fast_path.load_scripts()
        self._started = True
        await self.reconciler.start_up()  # adopts a consistent ready epoch: no rebuild, no one disturbed
        writers = len(self.group_commit.connections)
        self._tasks = [
            asyncio.create_task(self.batcher.dispatch_loop(), name="inventory-dispatch"),
            asyncio.create_task(self.groups.dispatch_loop(), name="inventory-group-dispatch"),
            *(
                asyncio.create_task(self.group_commit.write_loop(i), name=f"inventory-group-commit-{i}")
                for i in range(writers)
            ),
            asyncio.create_task(self.monitor.run(), name="inventory-monitor"),
            asyncio.create_task(self.batcher.deadline_loop(), name="inventory-deadlines"),
        ]
        if self.sweeper.interval:
            self._tasks.append(asyncio.create_task(self.sweeper.run(), name="inventory-sweeper"))

    async def close(self) -> None:
        self._started = False
        # Let queued decisions finish their commit so nothing acknowledged is half-done.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._drain(), 5)
        await cancel_and_wait([*self._tasks, self.reconciler.task])
        self._tasks.clear()
        self.batcher.fail_queued(EngineUnavailable("engine closed"))
        self.groups.fail_queued(EngineUnavailable("engine closed"))
        self.group_commit.close_connections()
        self.group_writes.close_connections()
        await self.db.close()
        await self.fast_path.close()

    async def _drain(self) -> None:
        while (  # noqa: ASYNC110
            self.batcher.queue or self.group_commit.busy or self.groups.busy or self.background.active
        ):
            await asyncio.sleep(0.01)

    async def migrate(self) -> list[int]:
        return await migrate_mysql(self.mysql)

    async def ping(self) -> None:
        self._check_db()
        if self.fast_path.epoch is None:
            raise EngineUnavailable("stock counters are being rebuilt (reconcile)")
        try:
            ready = await self.fast_path.ready_epoch()
        except RedisError as exc:
            self.fast_path.lost(f"redis error: {exc!r}")
            raise EngineUnavailable(f"redis unavailable: {exc}") from exc
        if ready is None:
            self.fast_path.lost("ready marker missing")
            raise EngineUnavailable("stock counters are being rebuilt (reconcile)")
        if ready != self.fast_path.epoch:
            self.fast_path.epoch = ready  # another process reconciled: its epoch is complete

    def _check_db(self) -> None:
        if not self._started:
            raise EngineUnavailable("inventory engine not started")
        if not self.db.ok:
            raise self.db.unavailable()

    def _check_open(self) -> str:
        """The epoch to decide under, or 503 (reconcile scheduled)."""
        self._check_db()
        epoch = self.fast_path.epoch
        if epoch is None:
            self._schedule_reconcile()
            raise EngineUnavailable("stock counters are being rebuilt (reconcile); retry shortly")
        return epoch

    def _schedule_reconcile(self) -> None:
        self.reconciler.schedule()

    def _notify_outbox(self) -> None:
        if self.on_outbox is not None:
            self.on_outbox()

    # the port -------------------------------------------------------------------------------

    async def reserve(self, request: ReserveRequest) -> Reservation:
        validate_reserve(request)
        self._check_open()
        return await self.batcher.reserve(request)

    async def reserve_many(self, request: GroupReserveRequest) -> list[Reservation]:
        """Every line held, or none (``groups``)."""
        validate_group(request)
        self._check_open()
        return await self.groups.reserve_many(request)

    async def confirm_many(self, reservation_ids: Sequence[str]) -> list[Reservation]:
        self._check_db()
        return await self.groups.confirm_many(reservation_ids)

    async def release_many(self, reservation_ids: Sequence[str]) -> list[Reservation]:
        self._check_db()
        return await self.groups.release_many(reservation_ids)

    async def stock_levels(self, skus: Sequence[str]) -> dict[str, StockLevel]:
        """Stock of each SKU that has a record, as a reservation would see it now: Redis' counters in one
        round trip (never looser than MySQL, invariant 1), or MySQL's while the fast path is rebuilt."""
        self._check_db()
        wanted = list(dict.fromkeys(skus))
        if not wanted:
            return {}
        epoch = self.fast_path.epoch
        if epoch is not None:
            with contextlib.suppress(RedisError):
                async with self._stock_reads:  # reads never take the connections decisions need
                    return await self._fast_levels(epoch, wanted)
        async with self.db.transaction() as cur:
            await cur.execute(f"SELECT {STOCK_COLUMNS} FROM inv_stock WHERE sku IN {sql.in_list(wanted)}")
            rows = await cur.fetchall()
        return {row[0]: stock_from_row(row) for row in rows}

    async def _fast_levels(self, epoch: str, skus: list[str]) -> dict[str, StockLevel]:
        """stock_levels.lua: one call for every SKU (a pipeline of HMGETs costs the client far more)."""
        answer = await self.fast_path.redis.evalsha(
            self.fast_path.sha(Script.STOCK_LEVELS), 0, self.fast_path.prefix, epoch, *skus
        )
        if answer == ScriptAnswer.NOT_READY:
            raise RedisError("not ready")
        found: dict[str, StockLevel] = {}
        for i, sku in enumerate(skus):
            on_hand, held, sold, limit = (int(v) for v in answer[4 * i : 4 * i + 4])
            if on_hand >= 0:
                found[sku] = StockLevel(
                    sku=sku,
                    on_hand=on_hand,
                    held=held,
                    sold=sold,
                    per_customer_limit=None if limit < 0 else limit,
                )
        return found

    async def confirm(self, reservation_id: str) -> Reservation:
        self._check_db()
        return await self.transitions.confirm(reservation_id)

    async def release(self, reservation_id: str) -> Reservation:
        self._check_db()
        return await self.transitions.release(reservation_id)

    async def expire_due(self, now: float | None = None, limit: int = 1000) -> int:
        return await self.sweeper.expire_due(now, limit)

    async def set_on_hand(
        self,
        sku: str,
        on_hand: int | None,
        *,
        warehouses: dict[str, int] | None = None,
        per_customer_limit: int | None = None,
        reason: str = "admin",
    ) -> StockLevel:
        warehouses = validate_set_stock(sku, on_hand, warehouses, per_customer_limit)
        self._check_db()

        def decide(before: StockLevel | None) -> StockLevel:
            return decide_set_stock(
                before, sku, on_hand, warehouses=warehouses, per_customer_limit=per_customer_limit
            )

        result = await self.stock.apply(StockChange(sku, decide, reason))
        assert result is not None
        return result

    async def adjust_from_feed(
        self, sku: str, warehouses: dict[str, int], *, feed_revision: int
    ) -> StockLevel | None:
        validate_sku(sku)
        self._check_db()

        def decide(before: StockLevel | None) -> StockLevel | None:
            return decide_feed_change(before, sku, warehouses)

        return await self.stock.apply(StockChange(sku, decide, "feed", feed_revision))

    async def adjust_many_from_feed(self, changes: Sequence[FeedStock]) -> FeedOutcome:
        """A batch of catalog-feed stock: each SKU in its own locked transaction (a few at a time); a
        refused SKU is reported, an unavailable engine fails the batch (the consumer retries it)."""
        self._check_db()
        gate = asyncio.Semaphore(STOCK_FEED_CONCURRENCY)
        applied: list[str] = []
        rejected: dict[str, str] = {}

        async def apply(change: FeedStock) -> None:
            async with gate:
                try:
                    changed = await self.adjust_from_feed(
                        change.sku, change.warehouses, feed_revision=change.feed_revision
                    )
                except EngineUnavailable:
                    raise
                except InventoryError as exc:
                    rejected[change.sku] = str(exc)
                    return
            if changed is not None:
                applied.append(change.sku)

        await asyncio.gather(*(apply(change) for change in latest_per_sku(changes)))
        return FeedOutcome(len(applied), rejected)

    async def set_warehouse_stock(self, rows: Sequence[WarehouseQuantity]) -> WarehouseStockOutcome:
        """A stock feed's batch: each SKU in its own locked transaction (a few at a time)."""
        self._check_db()
        batch = WarehouseRowsBatch(rows)
        gate = asyncio.Semaphore(STOCK_FEED_CONCURRENCY)

        async def apply(sku: str) -> None:
            def decide(before: StockLevel | None) -> StockLevel | None:
                decided = batch.decide_one(sku, before)
                return None if decided is None else decided[1]

            async with gate:
                await self.stock.apply(StockChange(sku, decide, "stock_feed"))

        await asyncio.gather(*(apply(sku) for sku in batch.valid_skus()))
        return batch.outcome

    async def reconcile(self) -> ReconcileReport:
        """Rebuild Redis from MySQL under a new epoch (invariant 4). Safe to run any time."""
        return await self.reconciler.reconcile()

    # reads (MySQL: what has been acknowledged) ------------------------------------------------

    async def get_stock(self, sku: str) -> StockLevel:
        self._check_db()
        async with self.db.transaction() as cur:
            await cur.execute(f"SELECT {STOCK_COLUMNS} FROM inv_stock WHERE sku = %s", (sku,))
            row = await cur.fetchone()
        if row is None:
            raise UnknownSku(sku)
        return stock_from_row(row)

    async def get_reservation(self, reservation_id: str) -> Reservation:
        self._check_db()
        async with self.db.transaction() as cur:
            await cur.execute(
                f"SELECT {RESERVATION_COLUMNS} FROM inv_reservations WHERE id = %s", (reservation_id,)
            )
            row = await cur.fetchone()
        res = None if row is None else reservation_from_row(row)
        if res is None or res.idempotency_key.startswith(sql.LOST_PREFIX):
            raise ReservationNotFound(reservation_id)
        return res

    async def fast_path_stock(self, sku: str) -> StockLevel | None:
        """Redis' view of a SKU (for tests, the benchmark and operators); None when absent/not ready."""
        return await self.fast_path.stock_level(sku)

    # outbox (read by events.OutboxRelay) ------------------------------------------------------

    async def outbox_fetch(self, limit: int) -> list[OutboxEntry]:
        async with self.db.transaction() as cur:
            await cur.execute(
                "SELECT id, topic, msg_key, value FROM inv_outbox ORDER BY id LIMIT %s", (limit,)
            )
            rows = await cur.fetchall()
        return [OutboxEntry(int(i), t, k, bytes(v)) for i, t, k, v in rows]

    async def outbox_delete(self, ids: Sequence[int]) -> None:
        if ids:
            async with self.db.transaction() as cur:
                await cur.execute(sql.delete_outbox(ids))
