"""``CommerceStore`` over ``commerce.store_sql.SqlOps``: each method runs one operation in one
transaction through the adapter's ``_run`` (``sqlite.py``: group commit on one writer thread;
``mysql.py``: a pool of connections)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from commerce.domain import CartLine, CartState, Checkout, CheckoutStatus, HeldStock, Price
from commerce.port import Claim, OutboxMessage, PriceUpdate, WishlistItem
from commerce.store_sql import Op, SqlOps
from kernel.eventlog.outbox import OutboxEntry

T = TypeVar("T")


class SqlCommerceStore:
    """``CommerceStore`` over ``SqlOps``; an adapter supplies ``_run`` (one op, one transaction)."""

    ops: SqlOps

    async def _run(self, op: Op[T]) -> T:
        raise NotImplementedError

    async def put_prices(self, updates: Sequence[PriceUpdate]) -> int:
        return await self._run(self.ops.put_prices(updates)) if updates else 0

    async def price_generation(self) -> int:
        return await self._run(self.ops.price_generation())

    async def get_price(self, sku: str) -> Price | None:
        return await self._run(self.ops.get_price(sku))

    async def get_cart(self, cart_id: str) -> list[CartLine]:
        return await self._run(self.ops.get_cart(cart_id))

    async def read_cart(self, cart_id: str) -> CartState:
        return await self._run(self.ops.read_cart(cart_id))

    async def set_line(self, cart_id: str, price: Price, quantity: int, now: float) -> None:
        await self._run(self.ops.set_line(cart_id, price, quantity, now))

    async def put_line(self, cart_id: str, sku: str, quantity: int, now: float) -> CartState | None:
        return await self._run(self.ops.put_line(cart_id, sku, quantity, now))

    async def remove_line(self, cart_id: str, sku: str) -> CartState:
        return await self._run(self.ops.remove_line(cart_id, sku))

    async def merge(self, into: str, source: str, now: float) -> int:
        return await self._run(self.ops.merge(into, source, now))

    async def get_wishlist(self, customer_id: str) -> list[WishlistItem]:
        return await self._run(self.ops.get_wishlist(customer_id))

    async def add_wish(self, customer_id: str, product_id: str, now: float) -> None:
        await self._run(self.ops.add_wish(customer_id, product_id, now))

    async def remove_wish(self, customer_id: str, product_id: str) -> bool:
        return await self._run(self.ops.remove_wish(customer_id, product_id))

    async def claim(self, checkout: Checkout) -> Claim:
        return await self._run(self.ops.claim(checkout))

    async def get_checkout(self, checkout_id: str) -> Checkout | None:
        return await self._run(self.ops.get_checkout(checkout_id))

    async def find_checkout(self, customer_id: str, idempotency_key: str) -> Checkout | None:
        return await self._run(self.ops.find_checkout(customer_id, idempotency_key))

    async def set_held(self, checkout_id: str, held: HeldStock) -> Checkout:
        return await self._run(self.ops.set_held(checkout_id, held))

    async def end_checkout(self, checkout_id: str, status: CheckoutStatus, now: float) -> Checkout:
        return await self._run(self.ops.end_checkout(checkout_id, status, now))

    async def confirm(
        self, checkout_id: str, payment_reference: str, now: float, events: Sequence[OutboxMessage]
    ) -> Checkout:
        return await self._run(self.ops.confirm(checkout_id, payment_reference, now, events))

    async def due_checkouts(self, now: float, limit: int) -> list[Checkout]:
        return await self._run(self.ops.due_checkouts(now, limit))

    async def outbox_fetch(self, limit: int) -> list[OutboxEntry]:
        return await self._run(self.ops.outbox_fetch(limit))

    async def outbox_delete(self, ids: Sequence[int]) -> None:
        await self._run(self.ops.outbox_delete(ids))
