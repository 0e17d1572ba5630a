"""Commerce rules without I/O: price changes, the checkout snapshot, merging, money on the wire,
prices taken from catalog events."""

from __future__ import annotations

from decimal import Decimal

import pytest

from commerce.domain import (
    MAX_QUANTITY,
    CartLine,
    InvalidRequest,
    Price,
    PriceChanged,
    checkout_lines,
    merged_quantity,
    price_changes,
    total_of,
    validate_quantity,
    validate_sku,
)
from commerce.prices import price_updates
from commerce.views import cart_view, money
from kernel.contracts.events import Product, ProductRemoved, ProductUpserted, new_event


def line(sku: str, seen: str, now: str | None, quantity: int = 1) -> CartLine:
    current = None if now is None else Price(sku=sku, product_id=f"p-{sku}", price=Decimal(now))
    return CartLine(
        sku=sku, product_id=f"p-{sku}", quantity=quantity, seen_price=Decimal(seen), current=current
    )


def test_price_changes_name_moved_and_gone_lines() -> None:
    lines = [line("s:a", "10", "10.00"), line("s:b", "5", "6"), line("s:c", "1", None)]
    assert [(c.sku, c.was, c.now) for c in price_changes(lines)] == [("s:b", "5", "6"), ("s:c", "1", None)]


def test_checkout_snapshot_needs_consent_for_changed_prices() -> None:
    lines = [line("s:b", "5", "6", 2), line("s:a", "10", "10")]
    with pytest.raises(PriceChanged) as refused:
        checkout_lines(lines, accept_price_changes=False)
    assert [c.sku for c in refused.value.lines] == ["s:b"]
    snapshot = checkout_lines(lines, accept_price_changes=True)
    assert [(x.sku, x.unit_price, x.quantity) for x in snapshot] == [
        ("s:a", Decimal(10), 1),
        ("s:b", Decimal(6), 2),
    ]
    assert total_of(snapshot) == Decimal(22)
    with pytest.raises(PriceChanged):  # a product that is gone can never be accepted
        checkout_lines([line("s:c", "1", None)], accept_price_changes=True)


def test_merge_adds_up_to_the_line_maximum() -> None:
    assert merged_quantity(None, 3) == 3
    assert merged_quantity(2, 3) == 5
    assert merged_quantity(MAX_QUANTITY, 1) == MAX_QUANTITY


def test_validation() -> None:
    assert validate_sku("acme:SKU-1") == "acme:SKU-1"
    for bad in ("SKU-1", "", "a b:c", 5):
        with pytest.raises(InvalidRequest):
            validate_sku(bad)
    for bad in (0, MAX_QUANTITY + 1, True, "2", 1.5):
        with pytest.raises(InvalidRequest):
            validate_quantity(bad)


def test_money_is_a_plain_decimal_string() -> None:
    assert [money(Decimal(v)) for v in ("12.5000", "10", "1E+1", "0.10")] == ["12.5", "10", "10", "0.1"]


def test_cart_view_flags_lines_and_availability() -> None:
    view = cart_view("u1", [line("s:a", "10", "12", 2), line("s:c", "1", None)], {"s:a": 1})
    a, c = view.items
    assert (a.unit_price, a.price_changed, a.previous_price, a.available, a.available_quantity) == (
        "12",
        True,
        "10",
        False,
        1,
    )
    assert (c.unit_price, c.price_changed, c.available) == (None, True, False)
    assert view.total == "24"


def test_price_updates_keep_the_newest_revision_per_sku() -> None:
    p = Product(product_id="acme:1", supplier_id="acme", sku="S1", title="T", price=Decimal("3"))
    events = [
        new_event(ProductUpserted(product=p), key="acme:1", revision=2, producer="t"),
        new_event(ProductUpserted(product=p), key="acme:1", revision=1, producer="t"),
        new_event(
            ProductRemoved(product_id="acme:2", supplier_id="acme", sku="S2"),
            key="acme:2",
            revision=4,
            producer="t",
        ),
    ]
    updates = {u.sku: u for u in price_updates(events)}
    assert updates["acme:S1"].revision == 2 and updates["acme:S1"].price is not None
    assert updates["acme:S2"].price is None
