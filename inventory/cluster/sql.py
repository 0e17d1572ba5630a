"""SQL text of the statements the cluster engine builds itself: multi-row INSERTs and the group
commit's multi-statement round trips. Every value becomes a literal through PyMySQL's escaping;
a group commit escapes each distinct SKU and timestamp once (its rows repeat them)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import aiomysql
from pymysql.converters import escape_float, escape_str

from inventory.cluster.records import OutboxText, StockUpdate
from inventory.domain import Reservation, Status
from inventory.sql_common import RESERVATION_COLUMNS, STOCK_COLUMNS

# Idempotency keys of tombstones (placeholder rows of holds given up); clients cannot send a '!'.
LOST_PREFIX: Final = "!lost:"

FENCE_READ: Final = "SELECT epoch FROM inv_meta WHERE id = 1 LOCK IN SHARE MODE"
UPDATE_STOCK: Final = (
    "UPDATE inv_stock SET on_hand = %s, held = %s, sold = %s, revision = %s, updated_at = %s WHERE sku = %s"
)
INSERT_OUTBOX: Final = "INSERT INTO inv_outbox (topic, msg_key, value) VALUES (%s, %s, %s)"

# The group commit's INSERTs leave out the columns whose default is the value (schema migration 2):
# a reservation is born 'held'; a 'reserve' movement's d_on_hand and d_sold are 0.
_INSERT_HOLDS: Final = (
    "INSERT IGNORE INTO inv_reservations"
    " (id, idempotency_key, sku, customer_id, quantity, expires_at, created_at, updated_at) VALUES "
)
_INSERT_RESERVE_LEDGER: Final = "INSERT INTO inv_ledger (sku, kind, d_held, reservation_id, at) VALUES "
_INSERT_LEDGER: Final = (
    "INSERT INTO inv_ledger (sku, kind, d_on_hand, d_held, d_sold, reservation_id, at) VALUES "
)


class _Literals:
    """Escapes each distinct value once (for values that repeat within a batch)."""

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}
        self._numbers: dict[float, str] = {}

    def text(self, value: str) -> str:
        literal = self._texts.get(value)
        if literal is None:
            literal = self._texts[value] = escape_str(value)
        return literal

    def number(self, value: float) -> str:
        literal = self._numbers.get(value)
        if literal is None:  # "...e0": MySQL reads an approximate literal straight into the DOUBLE
            literal = self._numbers[value] = escape_float(value)
        return literal


def in_list(values: Iterable[str]) -> str:
    """``('a','b',...)`` for ``IN``."""
    return "(" + ",".join(escape_str(v) for v in values) + ")"


def insert_holds(rows: Sequence[Reservation], now: float) -> str:
    """INSERT IGNORE of new holds, one multi-row statement per batch (a skipped row is a repeated
    idempotency key or a tombstoned id; the caller compares the row count)."""
    lit = _Literals()
    at = lit.number(now)
    return _INSERT_HOLDS + ",".join(
        _hold_row(r, escape_str(r.reservation_id), lit.text(r.sku), lit, at) for r in rows
    )


def insert_reserve_ledger(rows: Sequence[Reservation], now: float) -> str:
    """The ledger's 'reserve' movements, one row per reservation."""
    lit = _Literals()
    at = lit.number(now)
    return _INSERT_RESERVE_LEDGER + ",".join(
        _ledger_row(r, escape_str(r.reservation_id), lit.text(r.sku), at) for r in rows
    )


def insert_holds_and_ledger(rows: Sequence[Reservation], now: float) -> tuple[str, str]:
    """``insert_holds`` and ``insert_reserve_ledger`` of the same rows, each value escaped once."""
    lit = _Literals()
    at = lit.number(now)
    holds: list[str] = []
    ledger: list[str] = []
    for r in rows:
        rid, sku = escape_str(r.reservation_id), lit.text(r.sku)
        holds.append(_hold_row(r, rid, sku, lit, at))
        ledger.append(_ledger_row(r, rid, sku, at))
    return _INSERT_HOLDS + ",".join(holds), _INSERT_RESERVE_LEDGER + ",".join(ledger)


def _hold_row(r: Reservation, rid: str, sku: str, lit: _Literals, at: str) -> str:
    return (
        f"({rid},{escape_str(r.idempotency_key)},{sku},{lit.text(r.customer_id)},{r.quantity:d},"
        f"{lit.number(r.expires_at)},{lit.number(r.created_at)},{at})"
    )


def _ledger_row(r: Reservation, rid: str, sku: str, at: str) -> str:
    return f"({sku},'reserve',{r.quantity:d},{rid},{at})"


def select_stock_for_update(skus: Sequence[str]) -> str:
    """Locking read of stock rows in SKU order (a fixed lock order: no deadlocks between writers)."""
    return (
        f"SELECT {STOCK_COLUMNS} FROM inv_stock WHERE sku IN {in_list(sorted(skus))} ORDER BY sku FOR UPDATE"
    )


def update_stock(u: StockUpdate) -> str:
    return (
        f"UPDATE inv_stock SET on_hand = {u.on_hand:d}, held = {u.held:d}, sold = {u.sold:d},"
        f" revision = {u.revision:d}, updated_at = {escape_float(u.updated_at)}"
        f" WHERE sku = {escape_str(u.sku)}"
    )


def insert_outbox(rows: Sequence[OutboxText]) -> str:
    return "INSERT INTO inv_outbox (topic, msg_key, value) VALUES " + ",".join(
        f"({escape_str(r.topic)},{escape_str(r.key)},{escape_str(r.value)})" for r in rows
    )


def reservations_by_ids_or_keys(rows: Sequence[Reservation]) -> str:
    ids = in_list(r.reservation_id for r in rows)
    keys = in_list(r.idempotency_key for r in rows)
    return (
        f"SELECT {RESERVATION_COLUMNS} FROM inv_reservations WHERE id IN {ids} OR idempotency_key IN {keys}"
    )


def end_holds(holds: Sequence[Reservation], end: Status, now: float) -> tuple[str, str]:
    """held -> ``end`` for rows locked by the caller: the row UPDATE and the ledger INSERT."""
    lit = _Literals()
    at = lit.number(now)
    status = escape_str(end.value)
    update = (
        f"UPDATE inv_reservations SET status = {status}, updated_at = {at}"
        f" WHERE id IN {in_list(r.reservation_id for r in holds)} AND status = 'held'"
    )
    sold = 1 if end is Status.CONFIRMED else 0
    ledger = _INSERT_LEDGER + ",".join(
        f"({lit.text(r.sku)},{status},0,{-r.quantity:d},{sold * r.quantity:d},"
        f"{escape_str(r.reservation_id)},{at})"
        for r in holds
    )
    return update, ledger


def insert_tombstones(reservation_ids: Sequence[str], now: float) -> str:
    """Placeholder rows that win the primary key over a hold's late commit (see invariant 3)."""
    at = escape_float(now)
    return (
        "INSERT IGNORE INTO inv_reservations (id, idempotency_key, sku, customer_id, quantity, status,"
        " expires_at, created_at, updated_at) VALUES "
        + ",".join(
            f"({escape_str(rid)},{escape_str(LOST_PREFIX + rid)},'-','-',0,'expired',{at},{at},{at})"
            for rid in reservation_ids
        )
    )


def select_reservations_for_update(reservation_ids: Iterable[str]) -> str:
    return (
        f"SELECT {RESERVATION_COLUMNS} FROM inv_reservations"
        f" WHERE id IN {in_list(sorted(reservation_ids))} ORDER BY id FOR UPDATE"
    )


def delete_outbox(ids: Sequence[int]) -> str:
    return f"DELETE FROM inv_outbox WHERE id IN ({','.join(f'{int(i):d}' for i in ids)})"


async def run_statements(cur: aiomysql.Cursor, statements: str) -> None:
    """Send a multi-statement and read every result (a failing statement raises, the rest is skipped)."""
    await cur.execute(statements)
    while await cur.nextset():
        pass
