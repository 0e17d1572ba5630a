"""Validate a mapped row into the canonical ``Product``, with a reason a supplier can act on.

Profiles turn supplier columns into a *draft* (plain dict with canonical names, values may still be
strings); this module is the single gate every feed line passes, whatever its profile. msgspec does
the structural conversion and constraints; the few rules msgspec cannot express on ``Decimal``
(finite, non-negative, bounded) are checked by hand.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import msgspec

from kernel.contracts.events import Product
from kernel.contracts.identifiers import scoped_sku

MAX_PRICE = Decimal("1000000000")
MAX_REF_LENGTH = 128
MAX_QUANTITY = 1_000_000_000
# Where ``default_stock`` puts the units of a product whose feed row names no stock. It ships to no delivery
# zone until one lists it (search/data/zones.json, or a DeliveryZoneUpdated event).
DEFAULT_STOCK_WAREHOUSE = "main"

Ref = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REF_LENGTH)]
Text = Annotated[str, msgspec.Meta(max_length=20_000)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Label = Annotated[str, msgspec.Meta(max_length=200)]
Segment = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]  # profiles strip segments
Currency = Annotated[str, msgspec.Meta(min_length=3, max_length=3)]  # + upper-case letters, below
Rating = Annotated[float, msgspec.Meta(ge=0, le=5)]
Warehouse = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Quantity = Annotated[int, msgspec.Meta(ge=0, le=MAX_QUANTITY)]


class RowRejected(ValueError):
    """This line cannot be imported; ``reason`` goes into the feed report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProductDraft(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """What a profile produces: canonical names, loosely typed values."""

    ref: Ref
    sku: Ref
    title: Name
    description: Text = ""
    brand: Label = ""
    category_path: tuple[Segment, ...] = ()
    price: Decimal
    list_price: Decimal | None = None
    currency: Currency = "INR"
    attributes: dict[Label, Text] = {}
    rating: Rating | None = None
    stock: dict[Warehouse, Quantity] | None = None
    image_url: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


_AT = re.compile(r"^(?P<msg>.*?) - at `\$\.?(?P<path>[^`]*)`$")


def reason_of(exc: msgspec.ValidationError) -> str:
    """``Expected `str` of length >= 1 - at `$.title``` -> ``title: expected `str` of length >= 1``."""
    text = str(exc)
    match = _AT.match(text)
    if match:
        msg = match["msg"]
        return f"{match['path']}: {msg[:1].lower()}{msg[1:]}"
    return text[:1].lower() + text[1:]


def _check_amount(name: str, value: Decimal | None) -> None:
    if value is None:
        return
    if not value.is_finite():
        raise RowRejected(f"{name}: must be a finite number, got {value}")
    if value < 0:
        raise RowRejected(f"{name}: must be >= 0, got {value}")
    if value > MAX_PRICE:
        raise RowRejected(f"{name}: must be <= {MAX_PRICE}, got {value}")


def _to_decimal(draft: dict[str, Any], name: str) -> None:
    """Strings -> Decimal here rather than in msgspec: several times cheaper on the hot path."""
    value = draft.get(name)
    if value.__class__ is str:
        try:
            draft[name] = Decimal(value)
        except InvalidOperation:
            raise RowRejected(f"{name}: invalid decimal {value[:40]!r}") from None


def validate(draft: dict[str, Any], supplier_id: str, default_stock: int | None = None) -> Product:
    """Draft -> Product with the supplier-scoped id ``<supplier_id>:<ref>`` and SKU ``<supplier_id>:<sku>``
    (so a feed can only ever name its own supplier's stock); raise RowRejected. ``default_stock``: the
    units in DEFAULT_STOCK_WAREHOUSE of a product whose row names no stock."""
    _to_decimal(draft, "price")
    _to_decimal(draft, "list_price")
    try:
        d = msgspec.convert(draft, ProductDraft, strict=False)
    except msgspec.ValidationError as exc:
        raise RowRejected(reason_of(exc)) from None
    currency = d.currency
    if currency != "INR" and not (currency.isascii() and currency.isalpha() and currency.isupper()):
        raise RowRejected(f"currency: expected a 3-letter ISO 4217 code, got {currency!r}")
    _check_amount("price", d.price)
    _check_amount("list_price", d.list_price)
    stock = d.stock
    if stock is None and default_stock is not None:
        stock = {DEFAULT_STOCK_WAREHOUSE: default_stock}
    return Product(
        product_id=f"{supplier_id}:{d.ref}",
        supplier_id=supplier_id,
        sku=scoped_sku(supplier_id, d.sku),
        title=d.title,
        description=d.description,
        brand=d.brand,
        category_path=d.category_path,
        price=d.price,
        list_price=d.list_price,
        currency=d.currency,
        attributes=d.attributes,
        rating=d.rating,
        stock=stock,
        image_url=d.image_url,
    )
