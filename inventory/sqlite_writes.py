"""The rows one SQLite transaction writes for stock changes: counters, ledger movements and outbox events.

Built per change and written together with ``executemany`` (a stock feed's batch is thousands of them).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import msgspec

from inventory.domain import InventoryError, StockLevel, validate_sku
from inventory.events import EnvelopeFactory, OutboxRow, outbox_rows
from inventory.feed_stock import FeedOutcome, FeedStock, decide_feed_change, latest_per_sku
from inventory.sql_common import STOCK_COLUMNS, stock_from_row


def _bump(stock: StockLevel) -> StockLevel:
    return msgspec.structs.replace(stock, revision=stock.revision + 1)


_json = msgspec.json.Encoder()
IN_CHUNK = 500  # SKUs per "IN (...)" lookup: below SQLite's bound-parameter limit
UPSERT_STOCK = """INSERT INTO inv_stock (sku, on_hand, held, sold, per_customer_limit, revision, warehouses,
        feed_revision, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, COALESCE(?, -1), ?)
    ON CONFLICT(sku) DO UPDATE SET on_hand = excluded.on_hand, held = excluded.held,
        sold = excluded.sold, per_customer_limit = excluded.per_customer_limit,
        revision = excluded.revision, warehouses = excluded.warehouses,
        feed_revision = COALESCE(?, inv_stock.feed_revision), updated_at = excluded.updated_at"""
INSERT_LEDGER = (
    "INSERT INTO inv_ledger (sku, kind, d_on_hand, d_held, d_sold, reservation_id, at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class StockWrites:
    """The rows of stock changes (counters, ledger movement, events), written together by executemany."""

    def __init__(self) -> None:
        self.stock: list[tuple[Any, ...]] = []
        self.ledger: list[tuple[Any, ...]] = []
        self.outbox: list[OutboxRow] = []
        self._envelopes = EnvelopeFactory()

    def add(
        self,
        before: StockLevel | None,
        after: StockLevel,
        kind: str,
        reservation_id: str | None,
        now: float,
        feed_revision: int | None,
        low_stock_threshold: int,
    ) -> StockLevel:
        after = _bump(after)
        warehouses = None if after.warehouses is None else _json.encode(after.warehouses).decode()
        self.stock.append(
            (after.sku, after.on_hand, after.held, after.sold, after.per_customer_limit, after.revision,
             warehouses, feed_revision, now, feed_revision)
        )  # fmt: skip
        b = before or StockLevel(sku=after.sku)
        self.ledger.append(
            (after.sku, kind, after.on_hand - b.on_hand, after.held - b.held, after.sold - b.sold,
             reservation_id, now)
        )  # fmt: skip
        self.outbox += outbox_rows(
            before, after, reason=kind, low_stock_threshold=low_stock_threshold, envelopes=self._envelopes
        )
        return after


def write_feed_stock(
    conn: sqlite3.Connection, changes: Sequence[FeedStock], now: float, low_stock_threshold: int
) -> tuple[StockWrites, FeedOutcome]:
    """A batch of catalog-feed stock in the caller's transaction: the stored rows read ``IN_CHUNK`` SKUs
    at a time, stale revisions and unchanged stock skipped, every change written by one executemany."""
    latest = latest_per_sku(changes)
    stored: dict[str, tuple[StockLevel, int]] = {}
    for start in range(0, len(latest), IN_CHUNK):
        chunk = [change.sku for change in latest[start : start + IN_CHUNK]]
        marks = ", ".join("?" * len(chunk))
        query = f"SELECT {STOCK_COLUMNS}, feed_revision FROM inv_stock WHERE sku IN ({marks})"
        for row in conn.execute(query, chunk):
            stored[row[0]] = (stock_from_row(row[:-1]), int(row[-1]))
    writes, applied, rejected = StockWrites(), 0, {}
    for change in latest:
        before, seen = stored.get(change.sku, (None, -1))
        if change.feed_revision <= seen:
            continue  # stale or repeated delivery
        try:
            validate_sku(change.sku)
            after = decide_feed_change(before, change.sku, change.warehouses)
        except InventoryError as exc:
            rejected[change.sku] = str(exc)
            continue
        if after is not None:
            writes.add(before, after, "feed", None, now, change.feed_revision, low_stock_threshold)
            applied += 1
    return writes, FeedOutcome(applied, rejected)
