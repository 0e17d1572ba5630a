"""Moving a SKU's counters in MySQL under its row lock, and the stock events the move produces."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import aiomysql

from inventory.cluster import sql
from inventory.cluster.records import CounterDelta, OutboxText, StockUpdate
from inventory.domain import Reservation, Status, StockLevel
from inventory.events import OutboxRow, outbox_rows
from inventory.sql_common import stock_from_row


def hold_deltas(holds: Iterable[Reservation]) -> dict[str, CounterDelta]:
    """Counter moves per SKU of recording new holds."""
    held: dict[str, int] = {}
    for res in holds:
        held[res.sku] = held.get(res.sku, 0) + res.quantity
    return {sku: CounterDelta(held=q) for sku, q in held.items()}


def end_deltas(holds: Iterable[Reservation], end: Status) -> dict[str, CounterDelta]:
    """Counter moves per SKU of ending holds (held -> sold for a confirm, held -> available otherwise)."""
    sold = 1 if end is Status.CONFIRMED else 0
    deltas: dict[str, CounterDelta] = {}
    for r in holds:
        d = deltas.get(r.sku, CounterDelta())
        deltas[r.sku] = CounterDelta(0, d.held - r.quantity, d.sold + sold * r.quantity)
    return deltas


def as_text(rows: Sequence[OutboxRow]) -> list[OutboxText]:
    return [OutboxText(row.topic, row.key, row.value.decode()) for row in rows]


def plan_moves(
    before: Mapping[str, StockLevel],
    deltas: Mapping[str, CounterDelta],
    *,
    reason: str,
    now: float,
    low_stock_threshold: int,
) -> tuple[list[StockUpdate], list[OutboxText]]:
    """The row updates (sorted by SKU) and outbox rows of moving the locked counters."""
    updates: list[StockUpdate] = []
    events: list[OutboxText] = []
    for sku in sorted(deltas):
        b = before.get(sku)
        if b is None:
            raise RuntimeError(f"stock row for {sku!r} missing")
        d = deltas[sku]
        a = StockLevel(
            sku=sku,
            on_hand=b.on_hand + d.on_hand,
            held=b.held + d.held,
            sold=b.sold + d.sold,
            per_customer_limit=b.per_customer_limit,
            revision=b.revision + 1,
            warehouses=b.warehouses,
        )
        updates.append(StockUpdate(a.on_hand, a.held, a.sold, a.revision, now, sku))
        events += as_text(outbox_rows(b, a, reason=reason, low_stock_threshold=low_stock_threshold))
    return updates, events


async def move_counters(
    cur: aiomysql.Cursor,
    deltas: Mapping[str, CounterDelta],
    *,
    reason: str,
    now: float,
    low_stock_threshold: int,
) -> int:
    """Apply the deltas under row locks and write their events to the outbox; returns the number of
    events written."""
    await cur.execute(sql.select_stock_for_update(list(deltas)))
    before = {s.sku: s for s in (stock_from_row(r) for r in await cur.fetchall())}
    updates, events = plan_moves(
        before, deltas, reason=reason, now=now, low_stock_threshold=low_stock_threshold
    )
    await cur.executemany(sql.UPDATE_STOCK, updates)
    if events:
        await cur.executemany(sql.INSERT_OUTBOX, events)
    return len(events)
