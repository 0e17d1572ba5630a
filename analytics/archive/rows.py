"""Activity events on the wire -> ``ACTIVITY_SCHEMA`` rows (pure: no I/O).

The archive reads the envelopes of ``kernel.contracts.events`` with its own decoder, ``ArchivedEvent``: one
msgspec pass into the few fields the lake keeps, the time left as its ISO text. Arrow then converts whole
columns at once (text to timestamps in one cast, constants and nulls made by Arrow, a list comprehension
per column). Decoding every event into its typed payload and handing Arrow Python datetimes cost about
three times as much; ``tests/unit/analytics`` checks both readings agree on every activity event type.
Events that are not activity are ignored, so a new event type on the topic never stops the archive.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from analytics.schema import ACTIVITY_SCHEMA, CART_ADD, LIVE, PURCHASE, SEARCH, VIEW
from kernel.contracts.events import AddedToCart, ProductViewed, Purchased, SearchPerformed

CENT = Decimal("0.01")
COLUMNS = tuple(ACTIVITY_SCHEMA.names)
_TYPES = {field.name: field.type for field in ACTIVITY_SCHEMA}
_TIMESTAMP = _TYPES["occurred_at"]


class _Item(msgspec.Struct, frozen=True, gc=False):
    product_id: str
    sku: str
    quantity: int
    unit_price: Decimal
    category: str = ""
    brand: str = ""


class _Payload(msgspec.Struct, frozen=True, gc=False):
    """The union of the activity payloads' fields the lake keeps (each type fills its own)."""

    user_id: str | None = None
    session_id: str | None = None
    region: str | None = None
    query: str = ""
    product_id: str | None = None
    sku: str | None = None
    quantity: int | None = None
    unit_price: Decimal | None = None
    category: str = ""
    brand: str = ""
    order_id: str = ""
    items: tuple[_Item, ...] = ()
    currency: str = "INR"


class ArchivedEvent(msgspec.Struct, frozen=True, gc=False):
    """An envelope as the archive reads it (unknown fields ignored, like every consumer)."""

    event_id: str
    type: str
    occurred_at: str  # ISO 8601, converted by Arrow a column at a time
    payload: _Payload


_decoder = msgspec.json.Decoder(ArchivedEvent)


class UndecodableEvent(ValueError):
    """A record that is not a valid activity envelope (left out of the lake; projectors dead-letter it)."""


def price(value: Decimal | None) -> Decimal | None:
    """A price as the lake keeps it: two decimals (``decimal128(18, 2)``)."""
    return None if value is None else value.quantize(CENT)


class RowBuffer:
    """The events of one file group, by type, until ``to_table``."""

    __slots__ = ("_by_type", "carts", "purchases", "rows", "searches", "source", "views")

    def __init__(self, source: str = LIVE) -> None:
        self.source = source
        self.searches: list[ArchivedEvent] = []
        self.views: list[ArchivedEvent] = []
        self.carts: list[ArchivedEvent] = []
        self.purchases: list[tuple[ArchivedEvent, int, _Item]] = []
        self._by_type = {
            SearchPerformed.event_type: self.searches.append,
            ProductViewed.event_type: self.views.append,
            AddedToCart.event_type: self.carts.append,
        }
        self.rows = 0

    def add(self, value: bytes) -> int:
        """Keep the event encoded in ``value``; returns the rows it makes (0: not an activity event)."""
        try:
            event = _decoder.decode(value)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise UndecodableEvent(str(exc)) from exc
        keep = self._by_type.get(event.type)
        if keep is not None:
            keep(event)
            self.rows += 1
            return 1
        if event.type == Purchased.event_type:
            items = event.payload.items
            self.purchases.extend((event, n, item) for n, item in enumerate(items))
            self.rows += len(items)
            return len(items)
        return 0

    def to_table(self) -> pa.Table:
        """Every row kept, in ``ACTIVITY_SCHEMA`` (searches, then views, cart adds and purchases)."""
        tables = [
            table
            for table in (self._searches(), self._views(), self._carts(), self._purchases())
            if table.num_rows
        ]
        return pa.concat_tables(tables) if tables else ACTIVITY_SCHEMA.empty_table()

    @staticmethod
    def _common(events: Sequence[ArchivedEvent]) -> dict[str, list[Any]]:
        return {
            "event_id": [e.event_id for e in events],
            "occurred_at": [e.occurred_at for e in events],
            "user_id": [e.payload.user_id for e in events],
            "session_id": [e.payload.session_id for e in events],
            "region": [e.payload.region for e in events],
        }

    def _searches(self) -> pa.Table:
        events = self.searches
        columns = self._common(events)
        columns["query"] = [e.payload.query.strip() for e in events]
        return _table(len(events), SEARCH, self.source, columns)

    def _views(self) -> pa.Table:
        events = self.views
        columns = self._common(events)
        columns["product_id"] = [e.payload.product_id for e in events]
        columns["category"] = [e.payload.category or None for e in events]
        columns["brand"] = [e.payload.brand or None for e in events]
        return _table(len(events), VIEW, self.source, columns)

    def _carts(self) -> pa.Table:
        events = self.carts
        columns = self._common(events)
        columns["product_id"] = [e.payload.product_id for e in events]
        columns["sku"] = [e.payload.sku for e in events]
        columns["quantity"] = [e.payload.quantity for e in events]
        columns["unit_price"] = [price(e.payload.unit_price) for e in events]
        return _table(len(events), CART_ADD, self.source, columns)

    def _purchases(self) -> pa.Table:
        """One row per item. Rows are named by the order (``order:<order_id>:<n>``), not the envelope: a
        sale published twice (a confirm repeated after a restart) gives the same ids, so readers dedupe."""
        rows = self.purchases
        columns = self._common([event for event, _, _ in rows])
        columns["event_id"] = [f"order:{e.payload.order_id}:{n}" for e, n, _ in rows]
        columns["user_id"] = [e.payload.user_id or None for e, _, _ in rows]
        columns["currency"] = [e.payload.currency for e, _, _ in rows]
        columns["order_id"] = [e.payload.order_id for e, _, _ in rows]
        columns["product_id"] = [i.product_id for _, _, i in rows]
        columns["sku"] = [i.sku for _, _, i in rows]
        columns["quantity"] = [i.quantity for _, _, i in rows]
        columns["unit_price"] = [price(i.unit_price) for _, _, i in rows]
        columns["category"] = [i.category or None for _, _, i in rows]
        columns["brand"] = [i.brand or None for _, _, i in rows]
        return _table(len(rows), PURCHASE, self.source, columns)


def _table(rows: int, event_type: str, source: str, columns: dict[str, Any]) -> pa.Table:
    """``rows`` rows: the given columns, ``event_type`` and ``source`` constant, nulls elsewhere."""
    constant = {"event_type": event_type, "source": source}
    arrays = []
    for name in COLUMNS:
        kind = _TYPES[name]
        if name in constant:
            arrays.append(pa.repeat(pa.scalar(constant[name], kind), rows))
        elif name == "occurred_at":
            arrays.append(pa.array(columns[name], type=pa.string()).cast(kind))
        elif name in columns:
            arrays.append(pa.array(columns[name], type=kind))
        else:
            arrays.append(pa.nulls(rows, kind))
    return pa.Table.from_arrays(arrays, schema=ACTIVITY_SCHEMA)


def split_by_hour(table: pa.Table) -> list[tuple[datetime, pa.Table]]:
    """The table cut into its hours (UTC), earliest first."""
    if table.num_rows == 0:
        return []
    hours = pc.floor_temporal(table["occurred_at"], unit="hour")
    distinct = sorted(pc.unique(hours).to_pylist())
    if len(distinct) == 1:
        return [(_utc(distinct[0]), table)]
    return [(_utc(hour), table.filter(pc.equal(hours, pa.scalar(hour, hours.type)))) for hour in distinct]


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
