"""The inventory API's wire shapes: request bodies as read off the wire, and the answers.

Kept apart from the routes (inventory/api.py) so the CLI can render stock the way the API does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from inventory.domain import Reservation, StockLevel

__all__ = ["ReservationOut", "StockOut", "_ReserveBody", "_StockBody", "stock_json"]


class _ReserveBody(msgspec.Struct):
    sku: Any = None
    quantity: Any = None
    customer_id: Any = None
    hold_seconds: Any = msgspec.UNSET  # the policy's default


class _StockBody(msgspec.Struct):
    on_hand: Any = None
    warehouses: Any = None
    per_customer_limit: Any = None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class ReservationOut(msgspec.Struct):
    reservation_id: str
    sku: str
    quantity: int
    customer_id: str
    status: str
    expires_at: str

    @classmethod
    def of(cls, res: Reservation) -> ReservationOut:
        return cls(
            reservation_id=res.reservation_id,
            sku=res.sku,
            quantity=res.quantity,
            customer_id=res.customer_id,
            status=res.status.value,
            expires_at=_iso(res.expires_at),
        )


class StockOut(msgspec.Struct, omit_defaults=True):
    sku: str
    on_hand: int
    held: int
    sold: int
    available: int
    in_stock: bool
    per_customer_limit: int | None
    revision: int
    warehouses: dict[str, int] | None = None  # per warehouse (sums to on_hand), where it is known

    @classmethod
    def of(cls, stock: StockLevel) -> StockOut:
        return cls(
            sku=stock.sku,
            on_hand=stock.on_hand,
            held=stock.held,
            sold=stock.sold,
            available=stock.available,
            in_stock=stock.in_stock,
            per_customer_limit=stock.per_customer_limit,
            revision=stock.revision,
            warehouses=stock.warehouses,
        )


def stock_json(stock: StockLevel) -> dict[str, Any]:
    """The stock as the API shows it, for the CLI."""
    body: dict[str, Any] = msgspec.to_builtins(StockOut.of(stock))
    return body
