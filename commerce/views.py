"""What the commerce routes answer: carts, checkouts and orders as the storefront sees them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from commerce.domain import ZERO, CartLine, Checkout
from commerce.port import WishlistItem


def money(value: Decimal) -> str:
    """A price as a plain decimal string ("12.5", "10"): no exponent, no trailing zeros of DECIMAL(18,4)."""
    text = format(value.normalize(), "f")
    return text


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class CartItem(msgspec.Struct, kw_only=True):
    sku: str
    product_id: str
    title: str
    quantity: int
    unit_price: str | None  # the current price (None: the product is no longer sold)
    price_changed: bool  # the price differs from the one the shopper saw when setting the quantity
    previous_price: str | None  # that seen price, when it changed
    available: bool  # the line's quantity can be reserved now
    available_quantity: int
    line_total: str


class CartView(msgspec.Struct, kw_only=True):
    customer_id: str
    items: list[CartItem]
    total: str
    currency: str


def cart_view(customer_id: str, lines: list[CartLine], available: dict[str, int]) -> CartView:
    items: list[CartItem] = []
    total = ZERO
    currency = "INR"
    for line in lines:
        current = line.current
        units = available.get(line.sku, 0)
        line_total = ZERO if current is None else current.price * line.quantity
        total += line_total
        if current is not None:
            currency = current.currency
        items.append(
            CartItem(
                sku=line.sku,
                product_id=line.product_id,
                title="" if current is None else current.title,
                quantity=line.quantity,
                unit_price=None if current is None else money(current.price),
                price_changed=line.price_changed or current is None,
                previous_price=money(line.seen_price) if line.price_changed or current is None else None,
                available=current is not None and units >= line.quantity,
                available_quantity=units,
                line_total=money(line_total),
            )
        )
    return CartView(customer_id=customer_id, items=items, total=money(total), currency=currency)


class CheckoutLineOut(msgspec.Struct, kw_only=True):
    sku: str
    product_id: str
    title: str
    quantity: int
    unit_price: str
    reservation_id: str | None


class CheckoutOut(msgspec.Struct, kw_only=True):
    checkout_id: str
    customer_id: str
    status: str
    lines: list[CheckoutLineOut]
    total: str
    currency: str
    expires_at: str | None
    order_id: str | None  # set once confirmed

    @classmethod
    def of(cls, c: Checkout) -> CheckoutOut:
        return cls(
            checkout_id=c.checkout_id,
            customer_id=c.customer_id,
            status=c.status.value,
            lines=[
                CheckoutLineOut(
                    sku=x.sku,
                    product_id=x.product_id,
                    title=x.title,
                    quantity=x.quantity,
                    unit_price=money(x.unit_price),
                    reservation_id=x.reservation_id,
                )
                for x in c.lines
            ],
            total=money(c.total),
            currency=c.currency,
            expires_at=iso(c.expires_at),
            order_id=c.order_id if c.status.value == "confirmed" else None,
        )


class OrderLineOut(msgspec.Struct, kw_only=True):
    sku: str
    product_id: str
    title: str
    quantity: int
    unit_price: str


class OrderOut(msgspec.Struct, kw_only=True):
    order_id: str
    checkout_id: str
    customer_id: str
    status: str
    lines: list[OrderLineOut]
    total: str
    currency: str
    payment_reference: str
    placed_at: str

    @classmethod
    def of(cls, c: Checkout) -> OrderOut:
        return cls(
            order_id=c.order_id,
            checkout_id=c.checkout_id,
            customer_id=c.customer_id,
            status="placed",
            lines=[
                OrderLineOut(
                    sku=x.sku,
                    product_id=x.product_id,
                    title=x.title,
                    quantity=x.quantity,
                    unit_price=money(x.unit_price),
                )
                for x in c.lines
            ],
            total=money(c.total),
            currency=c.currency,
            payment_reference=c.payment_reference or "",
            placed_at=iso(c.confirmed_at) or "",
        )


class WishlistItemOut(msgspec.Struct, kw_only=True):
    product_id: str
    added_at: str


class WishlistOut(msgspec.Struct, kw_only=True):
    customer_id: str
    items: list[WishlistItemOut]

    @classmethod
    def of(cls, customer_id: str, items: list[WishlistItem]) -> WishlistOut:
        return cls(
            customer_id=customer_id,
            items=[WishlistItemOut(product_id=i.product_id, added_at=iso(i.added_at) or "") for i in items],
        )
