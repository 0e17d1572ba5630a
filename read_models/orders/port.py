"""The orders store port (adapters: ``sql.SqliteOrdersStore``, ``sql.MysqlOrdersStore``; both pass
tests/contract/test_orders_store.py)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import NamedTuple, Protocol

import msgspec


class OrdersStoreError(Exception):
    """The store cannot answer now (503)."""


class InvalidCursor(ValueError):
    """A cursor this store did not hand out (400)."""


class OrderLine(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    product_id: str
    title: str
    quantity: int
    unit_price: str


class Order(msgspec.Struct, frozen=True, kw_only=True):
    """An order as the storefront shows it (money as decimal strings); ``revision`` of its events."""

    order_id: str
    checkout_id: str
    customer_id: str
    status: str
    lines: tuple[OrderLine, ...]
    total: str
    currency: str
    payment_reference: str
    placed_at: str  # ISO 8601, UTC
    placed_ts: float  # the same instant, for ordering
    revision: int


class OrdersPage(NamedTuple):
    orders: list[Order]
    next_cursor: str | None


class PageCursor(NamedTuple):
    """Where a page stopped: the last order's time and id (newest first)."""

    placed_ts: float
    order_id: str

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"{self.placed_ts!r}|{self.order_id}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> PageCursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            ts, _, order_id = raw.partition("|")
            if not order_id:
                raise ValueError(raw)
            return cls(float(ts), order_id)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidCursor(f"invalid cursor {text!r}: pass next_cursor as it was answered") from None


class OrdersStore(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    async def put_many(self, orders: Sequence[Order]) -> int:
        """Keep each order's newest revision (older or repeated ones change nothing); rows changed."""
        ...

    async def get(self, order_id: str) -> Order | None: ...

    async def for_customer(
        self, customer_id: str, *, limit: int, after: PageCursor | None = None
    ) -> OrdersPage:
        """The customer's orders, newest first, ``limit`` at most, after ``after``."""
        ...
