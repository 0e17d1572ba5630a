"""Setting a SKU's on-hand (admin, catalog feed or stock feed): restrict Redis, commit MySQL, then set
Redis exactly (invariant 1 in ``engine``).

Under the stock row's lock, the change is decided against the row (the domain's rules: on-hand never
below held + sold, the warehouse breakdown whole); stock_pre.lua then refuses it too when Redis holds
more than MySQL knows yet (decided holds whose commit is under way), else lowers Redis to min(old, new);
after COMMIT, stock_post.lua sets the exact values fenced by the stock revision, so neither a crash nor
two racing admins can leave Redis above the truth. A per-customer limit appearing on a SKU without one
stops decisions until reconcile has rebuilt the per-customer counts (both scripts answer ``rebuild``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import aiomysql
import msgspec

from inventory.cluster.counters import as_text
from inventory.cluster.database import Database
from inventory.cluster.fast_path import FastPath
from inventory.cluster.keys import NO_LIMIT, Script, ScriptAnswer
from inventory.cluster.sql import INSERT_OUTBOX
from inventory.domain import EngineUnavailable, OnHandBelowCommitted, StockLevel
from inventory.events import outbox_rows
from inventory.sql_common import STOCK_COLUMNS, stock_from_row

_LIMIT_INTRODUCED = "per-customer limit introduced (its counts are rebuilt)"


class StockChange(NamedTuple):
    sku: str
    decide: Callable[[StockLevel | None], StockLevel | None]  # the stock after, from the locked row
    reason: str
    feed_revision: int | None = None  # a catalog feed's: older or repeated ones are ignored


class _LockedRow(NamedTuple):
    stock: StockLevel
    feed_revision: int


class StockWriter:
    def __init__(
        self,
        db: Database,
        fast: FastPath,
        *,
        wait_for_reconcile: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
        notify_outbox: Callable[[], None],
        low_stock_threshold: int,
    ) -> None:
        self.db, self.fast, self.wait_for_reconcile = db, fast, wait_for_reconcile
        self.clock, self.notify_outbox, self.low_stock_threshold = clock, notify_outbox, low_stock_threshold

    async def apply(self, change: StockChange) -> StockLevel | None:
        """The new stock level, or None for a stale feed revision or nothing to change; the domain's
        refusals propagate (nothing changed)."""
        return await self.db.retrying(lambda: self._apply_once(change))

    async def _apply_once(self, change: StockChange) -> StockLevel | None:
        now = self.clock()
        rebuild = False
        async with self.db.transaction() as cur:
            row = await _locked_row(cur, change.sku)
            if (
                change.feed_revision is not None
                and row is not None
                and change.feed_revision <= row.feed_revision
            ):
                return None
            before = row.stock if row is not None else None
            decided = change.decide(before)
            if decided is None:
                return None
            after = msgspec.structs.replace(decided, revision=decided.revision + 1)
            epoch = self.fast.epoch
            if epoch is not None:  # make Redis strict before MySQL changes (we hold the row lock)
                pre = await self.fast.eval(
                    Script.STOCK_PRE, self.fast.prefix, epoch, change.sku, after.on_hand, _limit(after)
                )
                _refuse_below(pre, after)
                rebuild = self._limit_introduced(pre)
            feed_revision = (
                change.feed_revision
                if change.feed_revision is not None
                else (row.feed_revision if row else -1)
            )
            await self._write(cur, before, after, change.reason, feed_revision, now)
        rebuild = await self._set_exactly(after) or rebuild
        if rebuild:  # answer once reservations are decided again (bounded: the change is committed)
            await self.wait_for_reconcile(self.db.timeout)
        self.notify_outbox()
        return after

    async def _write(
        self,
        cur: aiomysql.Cursor,
        before: StockLevel | None,
        after: StockLevel,
        reason: str,
        feed_revision: int,
        now: float,
    ) -> None:
        """The stock row, its ledger movement and its events, in the caller's transaction."""
        await cur.execute(
            """INSERT INTO inv_stock (sku, on_hand, held, sold, per_customer_limit, revision,
                   feed_revision, warehouses, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON DUPLICATE KEY UPDATE on_hand = VALUES(on_hand),
                   per_customer_limit = VALUES(per_customer_limit), revision = VALUES(revision),
                   feed_revision = VALUES(feed_revision),
                   warehouses = VALUES(warehouses), updated_at = VALUES(updated_at)""",
            (
                after.sku,
                after.on_hand,
                after.held,
                after.sold,
                after.per_customer_limit,
                after.revision,
                feed_revision,
                json.dumps(after.warehouses) if after.warehouses is not None else None,
                now,
            ),
        )
        on_hand_before = before.on_hand if before is not None else 0
        await cur.execute(
            "INSERT INTO inv_ledger (sku, kind, d_on_hand, d_held, d_sold, reservation_id, at)"
            " VALUES (%s, %s, %s, 0, 0, NULL, %s)",
            (after.sku, reason, after.on_hand - on_hand_before, now),
        )
        events = as_text(
            outbox_rows(before, after, reason=reason, low_stock_threshold=self.low_stock_threshold)
        )
        if events:
            await cur.executemany(INSERT_OUTBOX, events)

    async def _set_exactly(self, after: StockLevel) -> bool:
        """stock_post.lua after COMMIT (best effort: a miss leaves Redis stricter); True: rebuild."""
        epoch = self.fast.epoch
        if epoch is None:
            return False
        with contextlib.suppress(EngineUnavailable):
            post = await self.fast.eval(
                Script.STOCK_POST,
                self.fast.prefix,
                epoch,
                after.sku,
                after.on_hand,
                _limit(after),
                after.revision,
                after.held,
                after.sold,
            )
            return self._limit_introduced(post)
        return False

    def _limit_introduced(self, answer: object) -> bool:
        if answer != ScriptAnswer.REBUILD:
            return False
        self.fast.lost(_LIMIT_INTRODUCED)
        return True


async def _locked_row(cur: aiomysql.Cursor, sku: str) -> _LockedRow | None:
    await cur.execute(
        f"SELECT {STOCK_COLUMNS}, feed_revision FROM inv_stock WHERE sku = %s FOR UPDATE", (sku,)
    )
    row = await cur.fetchone()
    if row is None:
        return None
    *stock, feed_revision = row
    return _LockedRow(stock_from_row(stock), int(feed_revision))


def _refuse_below(answer: object, after: StockLevel) -> None:
    """stock_pre.lua's ``below:<held>:<sold>``: Redis holds more than the change leaves room for."""
    if isinstance(answer, str) and answer.startswith(ScriptAnswer.BELOW.value + ":"):
        _, held, sold = answer.split(":")
        raise OnHandBelowCommitted(after.sku, after.on_hand, int(held), int(sold))


def _limit(stock: StockLevel) -> int:
    return NO_LIMIT if stock.per_customer_limit is None else stock.per_customer_limit
