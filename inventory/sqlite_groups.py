"""The embedded engine's group operations (``inventory.groups``): every line decided and recorded in one
operation of the single writer, i.e. one transaction; a refused line rolls the whole operation back
(its SAVEPOINT), so no group is ever partly held, sold or released."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from inventory.domain import (
    IdempotencyConflict,
    InvalidTransition,
    Reservation,
    ReservationNotFound,
    ReserveRequest,
    Status,
    StockLevel,
    decide_confirm,
    decide_reserve,
    new_reservation_id,
)
from inventory.groups import GroupReserveRequest, line_requests, validate_group
from inventory.sql_common import RESERVATION_COLUMNS, STOCK_COLUMNS, reservation_from_row, stock_from_row
from inventory.sqlite_writes import IN_CHUNK


class SqliteGroups:
    """Mixed into ``SqliteEngine``: the helpers named below are the engine's."""

    clock: Callable[[], float]
    _submit: Callable[..., Any]
    _stock: Callable[[sqlite3.Connection, str], StockLevel | None]
    _reservation: Callable[[sqlite3.Connection, str], Reservation | None]
    _write_stock: Callable[..., StockLevel]
    _finish: Callable[[sqlite3.Connection, Reservation, Status, float], Reservation]

    async def reserve_many(self, request: GroupReserveRequest) -> list[Reservation]:
        validate_group(request)
        lines = line_requests(request)
        now = self.clock()

        def op(conn: sqlite3.Connection) -> list[Reservation]:
            marks = ", ".join("?" * len(lines))
            rows = conn.execute(
                f"SELECT {RESERVATION_COLUMNS} FROM inv_reservations WHERE idempotency_key IN ({marks})",
                [line.idempotency_key for line in lines],
            ).fetchall()
            if rows:
                return _repeated(lines, [reservation_from_row(row) for row in rows])
            expires_at = now + request.hold_seconds
            return [self._hold_line(conn, line, now, expires_at) for line in lines]

        result: list[Reservation] = await self._submit(op)
        return result

    def _hold_line(
        self, conn: sqlite3.Connection, line: ReserveRequest, now: float, expires_at: float
    ) -> Reservation:
        """Decide and record one hold (a group's line, or ``SqliteEngine.reserve``'s one reservation)."""
        stock = self._stock(conn, line.sku)
        customer_has = 0
        if stock is not None and stock.per_customer_limit is not None:
            customer_has = conn.execute(
                "SELECT COALESCE(SUM(quantity), 0) FROM inv_reservations"
                " WHERE sku = ? AND customer_id = ? AND status IN ('held', 'confirmed')",
                (line.sku, line.customer_id),
            ).fetchone()[0]
        after = decide_reserve(stock, line, customer_has)
        res = Reservation(
            reservation_id=new_reservation_id(now), sku=line.sku, quantity=line.quantity,
            customer_id=line.customer_id, status=Status.HELD, expires_at=expires_at, created_at=now,
            idempotency_key=line.idempotency_key,
        )  # fmt: skip
        conn.execute(
            "INSERT INTO inv_reservations (id, idempotency_key, sku, customer_id, quantity, status,"
            " expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'held', ?, ?, ?)",
            (
                res.reservation_id,
                res.idempotency_key,
                res.sku,
                res.customer_id,
                res.quantity,
                expires_at,
                now,
                now,
            ),
        )
        self._write_stock(conn, stock, after, kind="reserve", reservation_id=res.reservation_id, now=now)
        return res

    def _group(self, conn: sqlite3.Connection, ids: Sequence[str]) -> list[Reservation]:
        found = []
        for rid in ids:
            res = self._reservation(conn, rid)
            if res is None:
                raise ReservationNotFound(rid)
            found.append(res)
        return found

    async def confirm_many(self, reservation_ids: Sequence[str]) -> list[Reservation]:
        """Sell every line, or none: a line that expired or was released fails the group (InvalidTransition)
        and the group's other holds are given back."""
        now = self.clock()

        def op(conn: sqlite3.Connection) -> tuple[list[Reservation], InvalidTransition | None]:
            group = self._group(conn, reservation_ids)
            refusal: InvalidTransition | None = None
            for res in group:
                try:
                    if decide_confirm(res, now) is not Status.CONFIRMED:
                        refusal = InvalidTransition(res.reservation_id, Status.EXPIRED, "confirm")
                except InvalidTransition as exc:
                    refusal = exc
            if refusal is None:
                return [self._finish(conn, r, Status.CONFIRMED, now) if r.status is Status.HELD else r
                        for r in group], None  # fmt: skip
            for res in group:
                if res.status is Status.HELD:
                    self._finish(conn, res, Status.EXPIRED if res.is_due(now) else Status.RELEASED, now)
            return group, refusal

        group, refusal = await self._submit(op)
        if refusal is not None:
            raise refusal
        return list(group)

    async def release_many(self, reservation_ids: Sequence[str]) -> list[Reservation]:
        """Give back every held line (idempotent); InvalidTransition, changing nothing, if one was sold."""
        now = self.clock()

        def op(conn: sqlite3.Connection) -> list[Reservation]:
            group = self._group(conn, reservation_ids)
            for res in group:
                if res.status is Status.CONFIRMED:
                    raise InvalidTransition(res.reservation_id, res.status, "release")
            return [
                self._finish(conn, r, Status.RELEASED, now) if r.status is Status.HELD else r for r in group
            ]

        result: list[Reservation] = await self._submit(op)
        return result

    async def stock_levels(self, skus: Sequence[str]) -> dict[str, StockLevel]:
        """The stock of each SKU that has a record (one query per chunk)."""
        wanted = list(dict.fromkeys(skus))

        def op(conn: sqlite3.Connection) -> dict[str, StockLevel]:
            found: dict[str, StockLevel] = {}
            for start in range(0, len(wanted), IN_CHUNK):
                chunk = wanted[start : start + IN_CHUNK]
                query = f"SELECT {STOCK_COLUMNS} FROM inv_stock WHERE sku IN ({', '.join('?' * len(chunk))})"
                found.update((row[0], stock_from_row(row)) for row in conn.execute(query, chunk))
            return found

        result: dict[str, StockLevel] = await self._submit(op) if wanted else {}
        return result


def _repeated(lines: list[ReserveRequest], found: list[Reservation]) -> list[Reservation]:
    """A repeated group key: the group as first recorded, if it is the same request."""
    by_key = {res.idempotency_key: res for res in found}
    group = [by_key.get(line.idempotency_key) for line in lines]
    if any(res is None or not res.matches(line) for res, line in zip(group, lines, strict=True)):
        raise IdempotencyConflict("Idempotency-Key already used for a different reservation")
    return [res for res in group if res is not None]
