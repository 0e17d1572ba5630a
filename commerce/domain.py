"""Commerce domain: carts, wishlists, checkouts and the rules between them. No I/O.

A cart line remembers the price the shopper saw when they last set its quantity (``seen_price``); the
cart shows the current price and flags the line when the two differ. A checkout snapshots the cart's
lines at their current prices, holds every line's stock all or nothing, and ends exactly once:
``confirmed`` (it became an order), ``released``, ``expired`` or ``failed`` (its hold was refused).
``pending`` is the short moment between claiming the cart and the hold's answer; a pending checkout
left behind by a crash is resumed by the next request for the same cart (the hold's idempotency key is
derived from the checkout id, so the resumed hold can never take stock twice).
"""

from __future__ import annotations

import os
import re
import time
from decimal import Decimal
from enum import StrEnum
from typing import Final

import msgspec

MAX_QUANTITY: Final = 1_000  # units of one line (the inventory's limit per reservation)
MAX_LINES: Final = 50  # lines of one cart and of one checkout (one atomic hold)
MAX_ID_LENGTH: Final = 128
MAX_SKU_LENGTH: Final = 64 + 1 + MAX_ID_LENGTH
_ID_CHARS: Final = "[A-Za-z0-9][A-Za-z0-9._:/@+#=-]"
ID_PATTERN: Final = rf"{_ID_CHARS}{{0,{MAX_ID_LENGTH - 1}}}"
SKU_PATTERN: Final = rf"{_ID_CHARS}{{0,{MAX_SKU_LENGTH - 1}}}"
_ID_RE: Final = re.compile(ID_PATTERN)
_SKU_RE: Final = re.compile(SKU_PATTERN)
PENDING_RESUME_S: Final = 10.0  # a pending checkout older than this is taken over (its request died)
STALE_PENDING_S: Final = 3600.0  # ... and one nobody took over in this long is ended (the sweep)
ZERO: Final = Decimal("0")


class CheckoutStatus(StrEnum):
    PENDING = "pending"
    HELD = "held"
    CONFIRMED = "confirmed"
    RELEASED = "released"
    EXPIRED = "expired"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        """Whether the checkout still claims its cart."""
        return self in (CheckoutStatus.PENDING, CheckoutStatus.HELD)


# Errors ------------------------------------------------------------------------------------


class CommerceError(Exception):
    """Base of the context's refusals; each maps to one HTTP status (``commerce.api.COMMERCE_ERRORS``)."""


class InvalidRequest(CommerceError):
    """Bad input (422)."""


class UnknownSku(CommerceError):
    """A SKU no catalog event named, or one whose product was removed (404)."""

    def __init__(self, sku: str) -> None:
        super().__init__(f"unknown sku {sku!r} (no product in the catalog has it)")
        self.sku = sku


class CartFull(CommerceError):
    def __init__(self) -> None:
        super().__init__(f"a cart holds at most {MAX_LINES} lines")


class EmptyCart(CommerceError):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"the cart of {customer_id!r} is empty: nothing to check out")


class CheckoutNotFound(CommerceError):
    def __init__(self, checkout_id: str) -> None:
        super().__init__(f"unknown checkout {checkout_id!r}")
        self.checkout_id = checkout_id


class OrderNotFound(CommerceError):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"unknown order {order_id!r}")


class PriceChanged(CommerceError):
    """Prices changed since the shopper set these lines (409): checking out needs their consent."""

    def __init__(self, lines: list[PriceChange]) -> None:
        names = ", ".join(line.sku for line in lines)
        super().__init__(
            f"prices changed since these lines were added: {names}; review the cart, or send"
            ' "accept_price_changes": true'
        )
        self.lines = lines


class OutOfStock(CommerceError):
    """A line cannot be held (409): nothing of the checkout was held."""

    def __init__(self, sku: str, requested: int, available: int) -> None:
        super().__init__(
            f"only {available} of {sku!r} available, {requested} requested: nothing was reserved"
        )
        self.sku, self.requested, self.available = sku, requested, available


class HoldLimitReached(CommerceError):
    """The per-customer limit of a SKU (429)."""

    def __init__(self, sku: str, limit: int, already: int) -> None:
        super().__init__(f"per-customer limit for {sku!r} is {limit}; the customer already has {already}")
        self.sku, self.limit, self.already = sku, limit, already


class CheckoutClosed(CommerceError):
    """Confirming a checkout that expired, was released or failed; releasing a confirmed one (409)."""

    def __init__(self, checkout_id: str, status: CheckoutStatus, action: str) -> None:
        super().__init__(f"cannot {action} checkout {checkout_id!r}: it is {status.value}")
        self.checkout_id, self.status = checkout_id, status


class CheckoutBusy(CommerceError):
    """Another request is holding this cart's stock right now; retry shortly (409)."""


class IdempotencyConflict(CommerceError):
    """The Idempotency-Key was used for another customer's checkout (409)."""


class CommerceUnavailable(CommerceError):
    """The store or the inventory engine cannot decide now: nothing decided, retry (503)."""


# Values ------------------------------------------------------------------------------------


class Price(msgspec.Struct, frozen=True, kw_only=True):
    """The current price of a SKU, as the catalog last said (``commerce.prices``)."""

    sku: str
    product_id: str
    price: Decimal
    currency: str = "INR"
    title: str = ""
    revision: int = 0


class CartLine(msgspec.Struct, frozen=True, kw_only=True):
    """A stored line with its current price joined in (``current`` None: the product is gone)."""

    sku: str
    product_id: str
    quantity: int
    seen_price: Decimal
    current: Price | None = None
    updated_at: float = 0.0

    @property
    def price_changed(self) -> bool:
        return self.current is not None and self.current.price != self.seen_price


class CartState(msgspec.Struct, frozen=True, kw_only=True):
    """A cart's lines as of one store version (every change to the lines bumps it in the same transaction)
    with their current prices as of one price generation (every price change bumps it likewise), read
    together: a cache keeps the newer of two copies by comparing them (ADR 0010)."""

    version: int
    lines: list[CartLine]
    prices: int = 0


class PriceChange(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    product_id: str
    was: str
    now: str | None  # None: the product is no longer sold


class CheckoutLine(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    product_id: str
    quantity: int
    unit_price: Decimal
    title: str = ""
    reservation_id: str | None = None


class Checkout(msgspec.Struct, frozen=True, kw_only=True):
    checkout_id: str
    customer_id: str
    idempotency_key: str
    status: CheckoutStatus
    lines: tuple[CheckoutLine, ...]
    total: Decimal
    currency: str
    order_id: str
    created_at: float
    expires_at: float | None = None
    hold_seconds: int = 600
    payment_reference: str | None = None
    confirmed_at: float | None = None
    session_id: str | None = None

    @property
    def reservation_ids(self) -> list[str]:
        return [line.reservation_id for line in self.lines if line.reservation_id is not None]

    def is_due(self, now: float) -> bool:
        return self.status is CheckoutStatus.HELD and self.expires_at is not None and self.expires_at <= now


class HeldStock(msgspec.Struct, frozen=True, kw_only=True):
    """What the inventory answered for a checkout's hold: a reservation per line, one expiry."""

    reservation_ids: tuple[str, ...]
    expires_at: float


# Validation --------------------------------------------------------------------------------


def validate_identifier(value: object, what: str) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise InvalidRequest(
            f"{what} must be 1-128 printable characters (letters, digits, . _ : / @ + # = -), got {value!r}"
        )
    return value


def validate_sku(value: object) -> str:
    if not isinstance(value, str) or not _SKU_RE.fullmatch(value) or ":" not in value:
        raise InvalidRequest(
            f"sku must be supplier-scoped, '<supplier_id>:<sku>' (as search hits show it), got {value!r}"
        )
    return value


def validate_quantity(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_QUANTITY:
        raise InvalidRequest(f"quantity must be an integer between 1 and {MAX_QUANTITY}, got {value!r}")
    return value


# Decisions ---------------------------------------------------------------------------------


def price_changes(lines: list[CartLine]) -> list[PriceChange]:
    """Lines whose price moved (or whose product is gone) since the shopper set them."""
    return [
        PriceChange(
            sku=line.sku,
            product_id=line.product_id,
            was=str(line.seen_price),
            now=None if line.current is None else str(line.current.price),
        )
        for line in lines
        if line.current is None or line.current.price != line.seen_price
    ]


def checkout_lines(lines: list[CartLine], *, accept_price_changes: bool) -> tuple[CheckoutLine, ...]:
    """The checkout's snapshot of a cart at current prices; PriceChanged unless accepted. A line whose
    product is gone can never be accepted."""
    changed = price_changes(lines)
    gone = [change for change in changed if change.now is None]
    if gone or (changed and not accept_price_changes):
        raise PriceChanged(gone or changed)
    snapshot = []
    for line in sorted(lines, key=lambda line: line.sku):
        assert line.current is not None
        snapshot.append(
            CheckoutLine(
                sku=line.sku,
                product_id=line.product_id,
                quantity=line.quantity,
                unit_price=line.current.price,
                title=line.current.title,
            )
        )
    return tuple(snapshot)


def total_of(lines: tuple[CheckoutLine, ...] | list[CheckoutLine]) -> Decimal:
    return sum((line.unit_price * line.quantity for line in lines), ZERO)


def merged_quantity(mine: int | None, theirs: int) -> int:
    """A guest's line merged into the customer's: the units add up, capped at the line maximum."""
    return min(MAX_QUANTITY, (mine or 0) + theirs)


def new_id(prefix: str, now: float | None = None) -> str:
    """Time-ordered and unguessable: ``<prefix>`` + 12 hex of ms clock + 20 hex random."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"{prefix}{ms:012x}{os.urandom(10).hex()}"


def hold_key(checkout_id: str) -> str:
    """The idempotency key of a checkout's hold: a resumed checkout asks for the same hold again."""
    return f"co-{checkout_id}"


class HoldEnded(CommerceError):
    """A line's hold ended (expired or released) before the checkout was confirmed (409)."""

    def __init__(self, status: str) -> None:
        super().__init__(f"the stock hold {status}")
        self.status = status
