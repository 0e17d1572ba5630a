"""The orders projection without I/O: newest revision per order, money as plain decimal strings, cursors
that round-trip and refuse what the store did not hand out."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from kernel.contracts.events import OrderLine, OrderPlaced, new_event
from read_models.orders.port import InvalidCursor, PageCursor
from read_models.orders.projector import orders_from_events


def placed(order_id: str, revision: int, status: str = "placed") -> object:
    payload = OrderPlaced(
        order_id=order_id, checkout_id="c1", customer_id="u1", status=status,
        lines=(OrderLine(sku="a:S", product_id="a:1", quantity=2, unit_price=Decimal("4.50")),),
        total=Decimal("9.00"), placed_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )  # fmt: skip
    return new_event(payload, key=f"order:{order_id}", revision=revision, producer="t")


def test_newest_revision_per_order_wins() -> None:
    orders = orders_from_events([placed("o1", 2, "cancelled"), placed("o1", 1), placed("o2", 1)])  # type: ignore[list-item]
    by_id = {o.order_id: o for o in orders}
    assert (by_id["o1"].status, by_id["o1"].revision) == ("cancelled", 2)
    assert (by_id["o2"].total, by_id["o2"].lines[0].unit_price) == ("9", "4.5")
    assert by_id["o2"].placed_at == "2026-01-02T03:04:05Z"


def test_cursors_round_trip_and_refuse_garbage() -> None:
    cursor = PageCursor(1767323045.25, "o1")
    assert PageCursor.decode(cursor.encode()) == cursor
    for bad in ("!!", "bm9waXBl", ""):
        with pytest.raises(InvalidCursor):
            PageCursor.decode(bad)
