"""The commerce context's ports: its relational store (``CommerceStore``; adapters ``SqliteCommerceStore``
and ``MysqlCommerceStore``, both passing tests/contract/test_commerce_store.py) and the stock holds it
asks the inventory for (``StockHolds``; the composition root adapts the inventory engine, see
``emporium/holds.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from commerce.domain import CartLine, CartState, Checkout, CheckoutStatus, HeldStock, Price
from kernel.eventlog.outbox import OutboxEntry


class PriceUpdate(NamedTuple):
    """A catalog event's price of a SKU (``price`` None: the product was removed), at its revision."""

    sku: str
    product_id: str
    price: Price | None
    revision: int


class WishlistItem(NamedTuple):
    product_id: str
    added_at: float


class OutboxMessage(NamedTuple):
    topic: str
    key: str
    value: bytes


class Claim(NamedTuple):
    """What claiming a cart for a checkout found: the checkout now owning the cart (``created``: the one
    asked for), or the one that already has the same idempotency key or owns the cart."""

    checkout: Checkout
    created: bool


class CommerceStore(Protocol):
    async def start(self) -> None:
        """Apply migrations and connect."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    # prices (fed by catalog events) ------------------------------------------------------------

    async def put_prices(self, updates: Sequence[PriceUpdate]) -> int:
        """Keep each SKU's newest revision (older or repeated ones change nothing); returns rows changed.
        A change bumps the price generation in the same transaction."""
        ...

    async def price_generation(self) -> int:
        """How many times ``put_prices`` changed the price list (``CartState.prices`` is read with it)."""
        ...

    async def get_price(self, sku: str) -> Price | None: ...

    # carts -------------------------------------------------------------------------------------

    async def get_cart(self, cart_id: str) -> list[CartLine]:
        """Lines in SKU order, each with its current price (None when the product is gone)."""
        ...

    async def read_cart(self, cart_id: str) -> CartState:
        """The lines (as ``get_cart``), the cart's version and the price generation, read together
        (version 0: never edited). Every change to a cart's lines bumps its version in the same
        transaction."""
        ...

    async def set_line(self, cart_id: str, price: Price, quantity: int, now: float) -> None:
        """Upsert one line (its seen price becomes ``price``); CartFull past the line limit."""
        ...

    async def put_line(self, cart_id: str, sku: str, quantity: int, now: float) -> CartState | None:
        """``set_line`` at the SKU's current price and the cart after, in one transaction; None (the
        lines unchanged) for a SKU without a price."""
        ...

    async def remove_line(self, cart_id: str, sku: str) -> CartState:
        """Delete the line if there is one; the cart after, in one transaction."""
        ...

    async def merge(self, into: str, source: str, now: float) -> int:
        """Move ``source``'s lines into ``into`` (quantities add up) and empty ``source``, in one
        transaction; returns the lines moved (0 when repeated: nothing left to move)."""
        ...

    # wishlists ---------------------------------------------------------------------------------

    async def get_wishlist(self, customer_id: str) -> list[WishlistItem]: ...

    async def add_wish(self, customer_id: str, product_id: str, now: float) -> None: ...

    async def remove_wish(self, customer_id: str, product_id: str) -> bool: ...

    # checkouts ---------------------------------------------------------------------------------

    async def claim(self, checkout: Checkout) -> Claim:
        """In one transaction: the checkout with the same (customer, idempotency key), or the active
        checkout already owning the cart, or ``checkout`` stored as pending and owning the cart."""
        ...

    async def get_checkout(self, checkout_id: str) -> Checkout | None: ...

    async def find_checkout(self, customer_id: str, idempotency_key: str) -> Checkout | None: ...

    async def set_held(self, checkout_id: str, held: HeldStock) -> Checkout:
        """pending -> held with a reservation per line; an already held checkout is returned as is."""
        ...

    async def end_checkout(self, checkout_id: str, status: CheckoutStatus, now: float) -> Checkout:
        """An active checkout -> released / expired / failed, its cart claim dropped (in one transaction);
        an ended one is returned as is."""
        ...

    async def confirm(
        self, checkout_id: str, payment_reference: str, now: float, events: Sequence[OutboxMessage]
    ) -> Checkout:
        """held -> confirmed in one transaction: the bought lines leave the cart, the claim is dropped
        and ``events`` enter the outbox. Repeated: the confirmed checkout as it is."""
        ...

    async def due_checkouts(self, now: float, limit: int) -> list[Checkout]:
        """Held checkouts whose hold expired at or before ``now``, and pending ones older than
        ``STALE_PENDING_S`` (their request died and nobody retried)."""
        ...

    # outbox ------------------------------------------------------------------------------------

    async def outbox_fetch(self, limit: int) -> Sequence[OutboxEntry]: ...

    async def outbox_delete(self, ids: Sequence[int]) -> None: ...


class StockHolds(Protocol):
    """Stock holds for checkouts, all lines or none (the inventory engine behind it)."""

    async def hold(
        self, lines: Sequence[tuple[str, int]], *, customer_id: str, idempotency_key: str, hold_seconds: int
    ) -> HeldStock:
        """Hold every (sku, quantity) atomically, or raise OutOfStock / HoldLimitReached / UnknownSku
        (nothing held) or CommerceUnavailable (not decided; retry with the same key). A repeated key
        answers the same holds."""
        ...

    async def confirm(self, reservation_ids: Sequence[str]) -> None:
        """Sell every held line at once; CheckoutClosed-like ``HoldEnded`` if any hold ended."""
        ...

    async def release(self, reservation_ids: Sequence[str]) -> None: ...

    async def available(self, skus: Sequence[str]) -> dict[str, int]:
        """Units available now per SKU (a SKU without stock is absent)."""
        ...
