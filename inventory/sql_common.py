"""Row mapping and statements shared by the SQLite and MySQL adapters (``?`` vs ``%s`` placeholders)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from inventory.domain import Reservation, Status, StockLevel

_warehouses = msgspec.json.Decoder(dict[str, int])
STOCK_COLUMNS = "sku, on_hand, held, sold, per_customer_limit, revision, warehouses"
RESERVATION_COLUMNS = "id, sku, quantity, customer_id, status, expires_at, created_at, idempotency_key"


def stock_from_row(row: Sequence[Any]) -> StockLevel:
    sku, on_hand, held, sold, limit, revision, warehouses = row
    return StockLevel(
        sku=sku,
        on_hand=int(on_hand),
        held=int(held),
        sold=int(sold),
        per_customer_limit=None if limit is None else int(limit),
        revision=int(revision),
        warehouses=_warehouses.decode(warehouses) if warehouses else None,
    )


def reservation_from_row(row: Sequence[Any]) -> Reservation:
    rid, sku, quantity, customer_id, status, expires_at, created_at, idem = row
    return Reservation(
        reservation_id=rid,
        sku=sku,
        quantity=int(quantity),
        customer_id=customer_id,
        status=Status(status),
        expires_at=float(expires_at),
        created_at=float(created_at),
        idempotency_key=idem,
    )
