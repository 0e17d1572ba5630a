"""Group commit: holds decided in Redis are recorded in MySQL by a few writer tasks, one transaction
per batch, and only then answered (invariants 2 and 3 in ``engine``).

A batch is written in two round trips: one multi-statement with the epoch fence, the reservation and
ledger rows and the locking read of the stock rows, then the counters, outbox rows and COMMIT. When a
row was skipped (a repeated idempotency key, a tombstoned id) the transaction is rolled back and the
general path resolves the conflicts row by row. A deadlock rolls the batch back and it runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiomysql
import pymysql
import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_incrementing

from inventory.cluster import sql
from inventory.cluster.counters import hold_deltas, move_counters, plan_moves
from inventory.cluster.database import (
    TRANSACTION_TRIES,
    Database,
    Fenced,
    is_connection_trouble,
    is_retryable,
)
from inventory.cluster.fast_path import FastPath
from inventory.cluster.keys import HoldEnd, HoldEnding, hold_member
from inventory.cluster.records import Decided, Stats
from inventory.domain import EngineUnavailable, IdempotencyConflict, Reservation, ReserveRequest
from inventory.sql_common import reservation_from_row, stock_from_row

log = structlog.get_logger(__name__)

Outcome = dict[str, Reservation | Exception]  # per reservation id: what its caller is answered


@dataclass(slots=True)
class _Attempt:
    """What one batch's write got to: the connection, whether COMMIT was sent, the outcome."""

    conn: aiomysql.Connection | None = None
    committing: bool = False
    outcome: Outcome | None = None  # None: every row went in as decided
    events: int = 0


class GroupCommit:
    def __init__(
        self,
        db: Database,
        fast: FastPath,
        *,
        clock: Callable[[], float],
        stats: Stats,
        in_doubt: list[Reservation],
        notify_outbox: Callable[[], None],
        writers: int,
        spill: int,
        max_batch: int,
        low_stock_threshold: int,
    ) -> None:
        self.db, self.fast, self.clock, self.stats = db, fast, clock, stats
        self.in_doubt, self.notify_outbox = in_doubt, notify_outbox
        self.spill, self.max_batch, self.low_stock_threshold = max(1, spill), max_batch, low_stock_threshold
        self.connections: list[aiomysql.Connection | None] = [None] * max(1, writers)
        self.idle_writers = len(self.connections)
        self.queue: list[Decided] = []
        self._wake = asyncio.Event()
        self._writing: set[asyncio.Future[None]] = set()  # the durable futures of unwritten batches

    def enqueue(self, decided: list[Decided], durable: asyncio.Future[None]) -> None:
        self._writing.add(durable)
        self.queue += decided
        self._wake.set()

    def unwritten(self) -> list[asyncio.Future[None]]:
        return [b for b in self._writing if not b.done()]

    @property
    def busy(self) -> bool:
        return bool(self.queue or self._writing or self.idle_writers < len(self.connections))

    def close_connections(self) -> None:
        for i, conn in enumerate(self.connections):
            if conn is not None:
                conn.close()
                self.connections[i] = None

    async def write_loop(self, idx: int) -> None:
        """Writer ``idx``. Writer 0 takes whatever is queued; writer i joins only when more than
        i * spill decisions wait. Light load thus gets few, large transactions (every round trip
        wakes MySQL). A deep queue is shared among the idle writers: their transactions overlap
        their round trips and InnoDB merges their log flushes, where one writer would make Redis
        and MySQL take turns."""
        spill = idx * self.spill
        while True:
            if len(self.queue) <= spill:
                self._wake.clear()
                await self._wake.wait()
                continue
            share = -(-len(self.queue) // max(1, self.idle_writers))
            take = min(self.max_batch, max(self.spill, share))
            batch = self.queue[:take]
            del self.queue[:take]
            self.idle_writers -= 1
            try:
                await self._write_batch(batch, idx)
            except Exception as exc:  # never let a writer die
                log.exception("group commit crashed", error=repr(exc))
                self._settle(batch, error=EngineUnavailable("internal write failure"))
            finally:
                self.idle_writers += 1

    async def _write_batch(self, batch: list[Decided], idx: int) -> None:
        by_epoch: dict[str, list[Decided]] = {}
        for d in batch:
            by_epoch.setdefault(d.epoch, []).append(d)
        for epoch, items in by_epoch.items():
            await self.commit_holds(epoch, items, idx)

    async def commit_holds(self, epoch: str, items: list[Decided], idx: int) -> None:
        attempt = _Attempt()
        started = time.perf_counter()
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: not attempt.committing and is_retryable(exc)),
            stop=stop_after_attempt(TRANSACTION_TRIES),
            wait=wait_incrementing(start=0.002, increment=0.002),
            reraise=True,
        )
        try:
            await retrying(self._write_once, epoch, items, idx, attempt)
        except Fenced:
            if attempt.conn is not None:
                with contextlib.suppress(Exception):
                    await attempt.conn.rollback()
            self._settle(items, error=EngineUnavailable("stock counters were rebuilt meanwhile; retry"))
            return
        except Exception as exc:
            await self._write_failed(epoch, items, idx, exc, attempt.committing)
            return
        self.stats.write_batches += 1
        self.stats.written += len(items)
        self.stats.commit_seconds += time.perf_counter() - started
        if attempt.outcome is not None:
            undo = [
                d.reservation
                for d in items
                if attempt.outcome.get(d.reservation.reservation_id) is not d.reservation
            ]
            if undo:
                await self._undo(undo, epoch)
        self._settle(items, attempt.outcome)
        if attempt.events:  # most batches cross no threshold: no events
            self.notify_outbox()

    async def _write_once(self, epoch: str, items: list[Decided], idx: int, attempt: _Attempt) -> None:
        conn = attempt.conn = await self._connection(idx)
        timeout = self.db.timeout
        try:
            async with conn.cursor() as cur:
                batched = await asyncio.wait_for(self._record_holds_batched(cur, epoch, items), timeout)
                if batched is not None:
                    finish, attempt.events = batched
                    attempt.committing = True
                    await asyncio.wait_for(sql.run_statements(cur, finish), timeout)
                else:  # rolled back: a row was skipped; the general path sorts it out
                    attempt.outcome, attempt.events = await asyncio.wait_for(
                        self._record_holds(cur, epoch, items), timeout
                    )
                    attempt.committing = True
                    await asyncio.wait_for(conn.commit(), timeout)
        except pymysql.err.MySQLError as exc:
            if not attempt.committing and is_retryable(exc):
                await conn.rollback()  # InnoDB rolled the whole batch back; it is run again
            raise

    async def _connection(self, idx: int) -> aiomysql.Connection:
        conn = self.connections[idx]
        if conn is None or conn.closed:
            conn = self.connections[idx] = await self.db.connect_for_batches()
        return conn

    async def _write_failed(
        self, epoch: str, items: list[Decided], idx: int, exc: Exception, committing: bool
    ) -> None:
        broken = self.connections[idx]
        if broken is not None:
            broken.close()
            self.connections[idx] = None
        if is_connection_trouble(exc):
            self.db.failed(exc)
        else:
            log.warning("group commit failed", error=repr(exc))
        if committing:
            # COMMIT was sent: the rows may or may not be in MySQL. Keep the holds (strict) and
            # settle them with tombstones once MySQL answers again.
            self.in_doubt.extend(d.reservation for d in items)
            self.stats.in_doubt += len(items)
        else:
            await self._undo([d.reservation for d in items], epoch)
        self._settle(items, error=EngineUnavailable(f"database unavailable: {exc}"))

    def _settle(
        self, items: Sequence[Decided], outcome: Outcome | None = None, error: Exception | None = None
    ) -> None:
        """Answer the callers: ``error`` for all, else ``outcome`` per id (None: all recorded as decided)."""
        for d in items:
            res, fut = d.reservation, d.caller
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
        for durable in {d.durable for d in items}:
            self._writing.discard(durable)
            if not durable.done():
                durable.set_result(None)

    async def _undo(self, reservations: Sequence[Reservation], epoch: str) -> None:
        """Drop holds that are certainly not in MySQL (and their idempotency keys)."""
        try:
            await self.fast.end_holds(
                epoch, [HoldEnding(hold_member(r), HoldEnd.UNDO) for r in reservations], self.clock()
            )
            self.stats.undone += len(reservations)
        except EngineUnavailable:
            pass  # Redis is being rebuilt from MySQL anyway

    async def _record_holds_batched(
        self, cur: aiomysql.Cursor, epoch: str, items: list[Decided]
    ) -> tuple[str, int] | None:
        """``_record_holds`` for the common case in two round trips: sends the first, returns the
        second (counters, outbox rows, COMMIT) with its number of outbox events; None after a
        rollback when a row was skipped."""
        now = self.clock()
        rows = [d.reservation for d in items]
        deltas = hold_deltas(rows)
        first = (
            sql.FENCE_READ,
            *sql.insert_holds_and_ledger(rows, now),
            sql.select_stock_for_update(list(deltas)),
        )
        with warnings.catch_warnings():  # a skipped duplicate is handled below, not a warning
            warnings.simplefilter("ignore")
            await cur.execute(";".join(first))
            (db_epoch,) = await cur.fetchone()
            await cur.nextset()
            inserted = cur.rowcount
            await cur.nextset()  # the ledger rows
            await cur.nextset()
            stock_rows = await cur.fetchall()
        if str(db_epoch) != epoch:
            raise Fenced
        if inserted != len(rows):
            await cur.connection.rollback()
            return None
        before = {s.sku: s for s in (stock_from_row(r) for r in stock_rows)}
        updates, events = plan_moves(
            before, deltas, reason="reserve", now=now, low_stock_threshold=self.low_stock_threshold
        )
        statements = [sql.update_stock(u) for u in updates]
        if events:
            statements.append(sql.insert_outbox(events))
        statements.append("COMMIT")
        return ";".join(statements), len(events)

    async def _record_holds(
        self, cur: aiomysql.Cursor, epoch: str, items: list[Decided]
    ) -> tuple[Outcome | None, int]:
        """Inside the writer transaction: fence, rows, duplicates, ledger, counters, outbox.

        Returns the outcome per reservation id (None when every row went in as decided) and the
        number of outbox events written."""
        await cur.execute(sql.FENCE_READ)
        (db_epoch,) = await cur.fetchone()
        if str(db_epoch) != epoch:
            raise Fenced
        now = self.clock()
        rows = [d.reservation for d in items]
        with warnings.catch_warnings():  # a skipped duplicate is handled below, not a warning
            warnings.simplefilter("ignore")
            inserted = await cur.execute(sql.insert_holds(rows, now))
        outcome: Outcome | None = None
        accepted = rows
        if inserted != len(rows):
            outcome = {res.reservation_id: res for res in rows}
            accepted = await self._resolve_conflicts(cur, rows, outcome)
        if not accepted:
            return outcome, 0
        await cur.execute(sql.insert_reserve_ledger(accepted, now))
        events = await move_counters(
            cur,
            hold_deltas(accepted),
            reason="reserve",
            now=now,
            low_stock_threshold=self.low_stock_threshold,
        )
        return outcome, events

    async def _resolve_conflicts(
        self, cur: aiomysql.Cursor, rows: list[Reservation], outcome: Outcome
    ) -> list[Reservation]:
        """Rows INSERT IGNORE skipped: an idempotency key already in MySQL, or a tombstoned id."""
        await cur.execute(sql.reservations_by_ids_or_keys(rows))
        found = [reservation_from_row(r) for r in await cur.fetchall()]
        by_id = {r.reservation_id: r for r in found}
        by_key = {r.idempotency_key: r for r in found}
        accepted: list[Reservation] = []
        for mine in rows:
            row = by_id.get(mine.reservation_id)
            if row is not None and row.idempotency_key == mine.idempotency_key:
                accepted.append(mine)
            elif row is not None:  # tombstoned by a sweeper: this hold was given up
                outcome[mine.reservation_id] = EngineUnavailable(
                    "reservation timed out before it was recorded"
                )
            else:
                existing = by_key.get(mine.idempotency_key)
                request = ReserveRequest(
                    sku=mine.sku,
                    quantity=mine.quantity,
                    customer_id=mine.customer_id,
                    idempotency_key=mine.idempotency_key,
                )
                outcome[mine.reservation_id] = (
                    existing
                    if existing is not None and existing.matches(request)
                    else IdempotencyConflict("Idempotency-Key already used for a different reservation")
                )
        return accepted
