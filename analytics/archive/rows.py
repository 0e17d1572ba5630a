"""Activity events -> ``ACTIVITY_SCHEMA`` rows, column by column (pure: no I/O).

A ``RowBuffer`` collects the rows of one file in Python lists, one per column, and turns them into an
Arrow table in one step: appending to lists and converting once is what makes the archive fast (building
a dict per row costs about twice as much). Events that are not activity (none on the activity topic
today) are ignored, so a later event type never stops the archive.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from analytics.schema import ACTIVITY_SCHEMA, CART_ADD, LIVE, PURCHASE, SEARCH, VIEW
from kernel.contracts.events import AddedToCart, Envelope, ProductViewed, Purchased, SearchPerformed

CENT = Decimal("0.01")
COLUMNS = tuple(ACTIVITY_SCHEMA.names)


def price(value: Decimal | None) -> Decimal | None:
    """A price as the lake keeps it: two decimals (``decimal128(18, 2)``)."""
    return None if value is None else value.quantize(CENT)


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


class RowBuffer:
    """The rows of one output file (one log partition, one hour), as columns."""

    __slots__ = ("columns", "rows")

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        self.rows = 0

    def add(self, **values: Any) -> None:
        """One row; columns not given are null."""
        for name, column in self.columns.items():
            column.append(values.get(name))
        self.rows += 1

    def to_table(self) -> pa.Table:
        arrays = [pa.array(self.columns[f.name], type=f.type) for f in ACTIVITY_SCHEMA]
        return pa.Table.from_arrays(arrays, schema=ACTIVITY_SCHEMA)


def add_event(buffers: dict[datetime, RowBuffer], event: Envelope, *, source: str = LIVE) -> int:
    """Add the rows of ``event`` to the buffer of its hour; returns the rows it made (0: not activity)."""
    payload = event.payload
    at = event.occurred_at
    hour = _hour(at)
    buffer = buffers.get(hour)
    if buffer is None:
        buffer = buffers[hour] = RowBuffer()
    common = {"event_id": event.event_id, "occurred_at": at, "source": source}
    if isinstance(payload, SearchPerformed):
        buffer.add(
            **common,
            event_type=SEARCH,
            user_id=payload.user_id,
            session_id=payload.session_id,
            region=payload.region,
            query=payload.query.strip(),
        )
        return 1
    if isinstance(payload, ProductViewed):
        buffer.add(
            **common,
            event_type=VIEW,
            user_id=payload.user_id,
            session_id=payload.session_id,
            region=payload.region,
            product_id=payload.product_id,
            category=payload.category or None,
            brand=payload.brand or None,
        )
        return 1
    if isinstance(payload, AddedToCart):
        buffer.add(
            **common,
            event_type=CART_ADD,
            user_id=payload.user_id,
            session_id=payload.session_id,
            region=payload.region,
            product_id=payload.product_id,
            sku=payload.sku,
            quantity=payload.quantity,
            unit_price=price(payload.unit_price),
        )
        return 1
    if isinstance(payload, Purchased):
        return _add_purchase(buffer, payload, at, source)
    if buffer.rows == 0:
        del buffers[hour]
    return 0


def _add_purchase(buffer: RowBuffer, payload: Purchased, at: datetime, source: str) -> int:
    """One row per item. Rows are named by the order (``order:<order_id>:<n>``), not by the envelope: a
    sale published twice (a confirm repeated after a restart) gives the same ids, so readers can dedupe."""
    for n, item in enumerate(payload.items):
        buffer.add(
            event_id=f"order:{payload.order_id}:{n}",
            event_type=PURCHASE,
            occurred_at=at,
            user_id=payload.user_id or None,
            session_id=payload.session_id,
            region=payload.region,
            product_id=item.product_id,
            sku=item.sku,
            quantity=item.quantity,
            unit_price=price(item.unit_price),
            currency=payload.currency,
            category=item.category or None,
            brand=item.brand or None,
            order_id=payload.order_id,
            source=source,
        )
    return len(payload.items)
