"""Embedded reservation engine: SQLite, conditional updates inside transactions, group commit.

One connection, owned by one worker thread (``kernel.sqlite_writer``): everything queued so far runs in
ONE ``BEGIN IMMEDIATE`` transaction (each operation inside a SAVEPOINT, so a refused or failing
operation leaves no trace) and the callers' futures resolve only after COMMIT.
Durability: WAL with ``synchronous=FULL``, so an acknowledged reservation survives a crash. The
single writer serialises decisions, which is what makes "check available, then hold" atomic.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import structlog

from inventory.domain import (
    DEFAULT_LOW_STOCK_THRESHOLD,
    EngineUnavailable,
    IdempotencyConflict,
    InvalidTransition,
    InventoryError,
    ReconcileReport,
    Reservation,
    ReservationNotFound,
    ReserveRequest,
    Status,
    StockLevel,
    UnknownSku,
    apply_transition,
    decide_confirm,
    decide_release,
    decide_set_stock,
    validate_reserve,
    validate_set_stock,
    validate_sku,
)
from inventory.events import OutboxEntry
from inventory.feed_stock import FeedOutcome, FeedStock, decide_feed_change
from inventory.schema import migrate_sqlite
from inventory.sql_common import RESERVATION_COLUMNS, STOCK_COLUMNS, reservation_from_row, stock_from_row
from inventory.sqlite_groups import SqliteGroups
from inventory.sqlite_writes import IN_CHUNK, INSERT_LEDGER, UPSERT_STOCK, StockWrites, write_feed_stock
from inventory.warehouse_rows import WarehouseRowsBatch
from kernel.contracts.stock import WarehouseQuantity, WarehouseStockOutcome
from kernel.sqlite_writer import GroupCommitWriter
from kernel.tasks import cancel_and_wait

log = structlog.get_logger(__name__)
T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]


class SqliteEngine(SqliteGroups):
    """ReservationEngine on one SQLite file (tables ``inv_*`` next to ingest's); the group operations
    (a checkout's lines, all or nothing) are in ``sqlite_groups``."""

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        low_stock_threshold: int = DEFAULT_LOW_STOCK_THRESHOLD,
        sweep_interval: float | None = 1.0,
        max_batch: int = 1000,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self.low_stock_threshold = low_stock_threshold
        self.sweep_interval = sweep_interval
        self.on_outbox = on_outbox
        self._writer = GroupCommitWriter(
            self.path,
            name="inventory",
            migrate=migrate_sqlite,
            unavailable=EngineUnavailable,
            passes=InventoryError,
            not_started="inventory engine not started",
            closed="engine closed",
            max_batch=max_batch,
            after_batch=self._wake_outbox,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._outbox_dirty = False

    # lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._writer.start()
        if self.sweep_interval:
            self._tasks.append(asyncio.create_task(self._sweep(), name="inventory-sqlite-sweeper"))

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        await self._writer.close()

    async def ping(self) -> None:
        await self._submit(lambda c: c.execute("SELECT 1").fetchone())

    # group commit (``kernel.sqlite_writer``) --------------------------------------------------

    def _submit(self, op: Op) -> asyncio.Future[Any]:
        return self._writer.submit(op)

    def _wake_outbox(self) -> None:
        """After a batch: its outbox rows are committed, so the relay may read them now."""
        if self._outbox_dirty and self.on_outbox is not None:
            self._outbox_dirty = False
            self.on_outbox()

    async def _sweep(self) -> None:
        assert self.sweep_interval
        while True:
            await asyncio.sleep(self.sweep_interval)
            if not self._writer.started:
                continue
            try:
                await self.expire_due()
            except Exception as exc:
                log.warning("inventory sweep failed", error=repr(exc))

    # helpers (run on the worker thread, inside the batch transaction) ------------------------

    def _stock(self, conn: sqlite3.Connection, sku: str) -> StockLevel | None:
        row = conn.execute(f"SELECT {STOCK_COLUMNS} FROM inv_stock WHERE sku = ?", (sku,)).fetchone()
        return stock_from_row(row) if row else None

    def _reservation(self, conn: sqlite3.Connection, rid: str) -> Reservation | None:
        row = conn.execute(
            f"SELECT {RESERVATION_COLUMNS} FROM inv_reservations WHERE id = ?", (rid,)
        ).fetchone()
        return reservation_from_row(row) if row else None

    def _write_stock(
        self,
        conn: sqlite3.Connection,
        before: StockLevel | None,
        after: StockLevel,
        *,
        kind: str,
        reservation_id: str | None,
        now: float,
        feed_revision: int | None = None,
    ) -> StockLevel:
        writes = StockWrites()
        after = writes.add(before, after, kind, reservation_id, now, feed_revision, self.low_stock_threshold)
        self._execute(conn, writes)
        return after

    def _execute(self, conn: sqlite3.Connection, writes: StockWrites) -> None:
        conn.executemany(UPSERT_STOCK, writes.stock)
        conn.executemany(INSERT_LEDGER, writes.ledger)
        if writes.outbox:
            conn.executemany("INSERT INTO inv_outbox (topic, msg_key, value) VALUES (?, ?, ?)", writes.outbox)
            self._outbox_dirty = True

    def _finish(self, conn: sqlite3.Connection, res: Reservation, final: Status, now: float) -> Reservation:
        """held -> final: reservation row, stock counters, ledger, events."""
        updated = conn.execute(
            "UPDATE inv_reservations SET status = ?, updated_at = ? WHERE id = ? AND status = 'held'",
            (final.value, now, res.reservation_id),
        ).rowcount
        if updated != 1:  # cannot happen with one writer; refuse rather than double-move stock
            raise EngineUnavailable(f"reservation {res.reservation_id} changed concurrently")
        before = self._stock(conn, res.sku)
        assert before is not None
        self._write_stock(
            conn,
            before,
            apply_transition(before, res.quantity, final),
            kind=final.value,
            reservation_id=res.reservation_id,
            now=now,
        )
        return _with_status(res, final)

    # the port -------------------------------------------------------------------------------

    async def reserve(self, request: ReserveRequest) -> Reservation:
        validate_reserve(request)
        now = self.clock()

        def op(conn: sqlite3.Connection) -> Reservation:
            row = conn.execute(
                f"SELECT {RESERVATION_COLUMNS} FROM inv_reservations WHERE idempotency_key = ?",
                (request.idempotency_key,),
            ).fetchone()
            if row:
                existing = reservation_from_row(row)
                if not existing.matches(request):
                    raise IdempotencyConflict("Idempotency-Key already used for a different reservation")
                return existing
            return self._hold_line(conn, request, now, now + request.hold_seconds)

        return await self._submit(op)

    async def confirm(self, reservation_id: str) -> Reservation:
        now = self.clock()

        def op(conn: sqlite3.Connection) -> tuple[Reservation, Status]:
            res = self._reservation(conn, reservation_id)
            if res is None:
                raise ReservationNotFound(reservation_id)
            final = decide_confirm(res, now)
            if res.status is Status.HELD:
                res = self._finish(conn, res, final, now)
            return res, final

        res, final = await self._submit(op)
        if final is not Status.CONFIRMED:
            raise InvalidTransition(reservation_id, final, "confirm")
        return res

    async def release(self, reservation_id: str) -> Reservation:
        now = self.clock()

        def op(conn: sqlite3.Connection) -> Reservation:
            res = self._reservation(conn, reservation_id)
            if res is None:
                raise ReservationNotFound(reservation_id)
            final = decide_release(res)
            return self._finish(conn, res, final, now) if res.status is Status.HELD else res

        return await self._submit(op)

    async def expire_due(self, now: float | None = None, limit: int = 1000) -> int:
        at = self.clock() if now is None else now

        def op(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                f"SELECT {RESERVATION_COLUMNS} FROM inv_reservations"
                " WHERE status = 'held' AND expires_at <= ? ORDER BY expires_at LIMIT ?",
                (at, limit),
            ).fetchall()
            for row in rows:
                self._finish(conn, reservation_from_row(row), Status.EXPIRED, at)
            return len(rows)

        return await self._submit(op)

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
        now = self.clock()

        def op(conn: sqlite3.Connection) -> StockLevel:
            before = self._stock(conn, sku)
            after = decide_set_stock(
                before, sku, on_hand, warehouses=warehouses, per_customer_limit=per_customer_limit
            )
            return self._write_stock(conn, before, after, kind=reason, reservation_id=None, now=now)

        return await self._submit(op)

    async def adjust_from_feed(
        self, sku: str, warehouses: dict[str, int], *, feed_revision: int
    ) -> StockLevel | None:
        validate_sku(sku)
        now = self.clock()

        def op(conn: sqlite3.Connection) -> StockLevel | None:
            before = self._stock(conn, sku)
            if before is not None:
                seen = conn.execute("SELECT feed_revision FROM inv_stock WHERE sku = ?", (sku,)).fetchone()[0]
                if feed_revision <= seen:
                    return None  # stale or repeated delivery
            after = decide_feed_change(before, sku, warehouses)
            if after is None:
                return None  # the stock already kept
            return self._write_stock(
                conn, before, after, kind="feed", reservation_id=None, now=now, feed_revision=feed_revision
            )

        return await self._submit(op)

    async def adjust_many_from_feed(self, changes: Sequence[FeedStock]) -> FeedOutcome:
        """A batch of catalog-feed stock in one transaction (a catch-up is thousands of events)."""
        now = self.clock()

        def op(conn: sqlite3.Connection) -> FeedOutcome:
            writes, outcome = write_feed_stock(conn, changes, now, self.low_stock_threshold)
            self._execute(conn, writes)
            return outcome

        return await self._submit(op)

    async def set_warehouse_stock(self, rows: Sequence[WarehouseQuantity]) -> WarehouseStockOutcome:
        """A stock feed's batch in one transaction; every SKU decided on its own (see ``warehouse_rows``)."""
        now = self.clock()
        batch = WarehouseRowsBatch(rows)

        def op(conn: sqlite3.Connection) -> WarehouseStockOutcome:
            known: dict[str, StockLevel] = {}
            skus = batch.valid_skus()
            for start in range(0, len(skus), IN_CHUNK):
                chunk = skus[start : start + IN_CHUNK]
                marks = ", ".join("?" * len(chunk))
                query = f"SELECT {STOCK_COLUMNS} FROM inv_stock WHERE sku IN ({marks})"
                known.update((row[0], stock_from_row(row)) for row in conn.execute(query, chunk))
            writes = StockWrites()
            for before, after in batch.decide(known.get):
                writes.add(before, after, "stock_feed", None, now, None, self.low_stock_threshold)
            self._execute(conn, writes)
            return batch.outcome

        return await self._submit(op)

    async def get_stock(self, sku: str) -> StockLevel:
        stock = await self._submit(lambda conn: self._stock(conn, sku))
        if stock is None:
            raise UnknownSku(sku)
        return stock

    async def get_reservation(self, reservation_id: str) -> Reservation:
        res = await self._submit(lambda conn: self._reservation(conn, reservation_id))
        if res is None:
            raise ReservationNotFound(reservation_id)
        return res

    async def reconcile(self) -> ReconcileReport:
        """SQLite is both truth and decision-maker: check the counters against the reservations."""
        started = time.perf_counter()
        expired = await self.expire_due()

        def op(conn: sqlite3.Connection) -> tuple[int, int, int]:
            epoch = conn.execute("SELECT epoch FROM inv_meta WHERE id = 1").fetchone()[0]
            skus = conn.execute("SELECT COUNT(*) FROM inv_stock").fetchone()[0]
            held = conn.execute("SELECT COUNT(*) FROM inv_reservations WHERE status = 'held'").fetchone()[0]
            return epoch, skus, held

        epoch, skus, held = await self._submit(op)
        return ReconcileReport(
            epoch=epoch,
            skus=skus,
            held_reservations=held,
            expired=expired,
            seconds=time.perf_counter() - started,
        )

    # outbox ---------------------------------------------------------------------------------

    async def outbox_fetch(self, limit: int) -> list[OutboxEntry]:
        rows = await self._submit(
            lambda conn: conn.execute(
                "SELECT id, topic, msg_key, value FROM inv_outbox ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        )
        return [OutboxEntry(int(i), t, k, bytes(v)) for i, t, k, v in rows]

    async def outbox_delete(self, ids: Sequence[int]) -> None:
        if ids:
            await self._submit(
                lambda conn: conn.executemany("DELETE FROM inv_outbox WHERE id = ?", [(i,) for i in ids])
            )


def _with_status(res: Reservation, status: Status) -> Reservation:
    return msgspec.structs.replace(res, status=status)
