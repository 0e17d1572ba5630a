"""Ending holds: confirm and release are committed in MySQL first and applied to Redis after
(giving stock back must never run ahead of the truth; invariant 1 in ``engine``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import aiomysql
import msgspec

from inventory.cluster import sql
from inventory.cluster.counters import end_deltas, move_counters
from inventory.cluster.database import Database
from inventory.cluster.fast_path import FastPath
from inventory.cluster.keys import HoldEnd, HoldEnding, hold_member
from inventory.domain import (
    EngineUnavailable,
    InvalidTransition,
    Reservation,
    ReservationNotFound,
    Status,
    decide_confirm,
    decide_release,
)
from inventory.sql_common import RESERVATION_COLUMNS, reservation_from_row


class Transitions:
    def __init__(
        self,
        db: Database,
        fast: FastPath,
        *,
        clock: Callable[[], float],
        notify_outbox: Callable[[], None],
        low_stock_threshold: int,
    ) -> None:
        self.db, self.fast, self.clock = db, fast, clock
        self.notify_outbox, self.low_stock_threshold = notify_outbox, low_stock_threshold

    async def confirm(self, reservation_id: str) -> Reservation:
        now = self.clock()

        async def attempt() -> tuple[Reservation, Status]:
            async with self.db.transaction() as cur:
                res = await _locked_reservation(cur, reservation_id)
                end = decide_confirm(res, now)
                if res.status is Status.HELD:
                    await self.finish(cur, [res], end, now)
            return res, end

        res, end = await self.db.retrying(attempt)
        await self.apply([HoldEnding(hold_member(res), HoldEnd(end.value))])
        if end is not Status.CONFIRMED:
            raise InvalidTransition(reservation_id, end, "confirm")
        return msgspec.structs.replace(res, status=end)

    async def release(self, reservation_id: str) -> Reservation:
        now = self.clock()

        async def attempt() -> tuple[Reservation, Status]:
            async with self.db.transaction() as cur:
                res = await _locked_reservation(cur, reservation_id)
                end = decide_release(res)
                if res.status is Status.HELD:
                    await self.finish(cur, [res], end, now)
            return res, end

        res, end = await self.db.retrying(attempt)
        await self.apply([HoldEnding(hold_member(res), HoldEnd(end.value))])
        return msgspec.structs.replace(res, status=end)

    async def finish(
        self, cur: aiomysql.Cursor, holds: Sequence[Reservation], end: Status, now: float
    ) -> None:
        """held -> ``end`` for rows locked by the caller: rows, ledger, counters, outbox."""
        if not holds:
            return
        update, ledger = sql.end_holds(holds, end, now)
        await cur.execute(update)
        await cur.execute(ledger)
        await move_counters(
            cur,
            end_deltas(holds, end),
            reason=end.value,
            now=now,
            low_stock_threshold=self.low_stock_threshold,
        )

    async def apply(self, endings: Sequence[HoldEnding]) -> None:
        """Best effort: a miss leaves Redis stricter than MySQL, which the sweeper/reconcile repairs."""
        epoch = self.fast.epoch
        if not endings or epoch is None:
            return
        with contextlib.suppress(EngineUnavailable):
            await self.fast.end_holds(epoch, endings, self.clock())
        self.notify_outbox()


async def _locked_reservation(cur: aiomysql.Cursor, reservation_id: str) -> Reservation:
    await cur.execute(
        f"SELECT {RESERVATION_COLUMNS} FROM inv_reservations WHERE id = %s FOR UPDATE", (reservation_id,)
    )
    row = await cur.fetchone()
    res = None if row is None else reservation_from_row(row)
    if res is None or res.idempotency_key.startswith(sql.LOST_PREFIX):
        raise ReservationNotFound(reservation_id)
    return res
