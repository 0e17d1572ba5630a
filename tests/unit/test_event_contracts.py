"""Event contracts: every payload survives the wire, old consumers tolerate new fields, bad bytes
are rejected with a reason a human can act on, and money stays exact."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.contracts.events import (
    ACTIVITY_TOPIC,
    CATALOG_TOPIC,
    PAYLOAD_TYPES,
    AddedToCart,
    DeadLetter,
    DeliveryZoneUpdated,
    Envelope,
    EventDecodeError,
    OrderLine,
    OrderPlaced,
    Payload,
    PopularProductsComputed,
    Product,
    ProductRemoved,
    ProductUpserted,
    ProductViewed,
    Purchased,
    PurchasedItem,
    RecommendationsComputed,
    RelatedProductsComputed,
    RestockAlert,
    SearchPerformed,
    StockLevelChanged,
    SupplierOnboarded,
    TrendingComputed,
    TrendingEntry,
    ZoneWarehouse,
    decode_dead_letter,
    decode_event,
    encode_dead_letter,
    encode_event,
    new_event,
)

PRODUCT = Product(
    product_id="bigbasket:10",
    supplier_id="bigbasket",
    sku="BB-10",
    title="Garlic Oil - Vegetarian Capsule 500 mg",
    description="Ayurvedic",
    brand="Sri Sri Ayurveda",
    category_path=("Beauty & Hygiene", "Hair Care"),
    price=Decimal("220.00"),
    list_price=Decimal("220.50"),
    currency="INR",
    attributes={"type": "Hair Oil & Serum"},
    rating=4.1,
    stock={"wh-1": 3, "wh-2": 0},
    image_url="https://example.invalid/10.jpg",
)

SAMPLES: list[Payload] = [
    ProductUpserted(product=PRODUCT),
    ProductRemoved(product_id="bigbasket:10", supplier_id="bigbasket", sku="BB-10"),
    SupplierOnboarded(supplier_id="bigbasket", name="BigBasket"),
    StockLevelChanged(sku="BB-10", on_hand=10, held=2, sold=1, available=7, in_stock=True, reason="reserve"),
    RestockAlert(sku="BB-10", available=1, threshold=5),
    DeliveryZoneUpdated(zone="560001", warehouses=(ZoneWarehouse(warehouse_id="wh-1", eta_hours=4),)),
    SearchPerformed(query="garlic oil", filters={"brand": "Sri Sri"}, total=3, user_id="u1", session_id="s1"),
    ProductViewed(product_id="bigbasket:10", user_id="u1", session_id="s1"),
    AddedToCart(product_id="bigbasket:10", sku="BB-10", quantity=2, user_id="u1"),
    Purchased(
        order_id="o1",
        user_id="u1",
        items=(
            PurchasedItem(
                product_id="bigbasket:10", sku="BB-10", quantity=2, unit_price=Decimal("0.10"), category="Oil"
            ),
        ),
    ),
    OrderPlaced(
        order_id="o1",
        checkout_id="c1",
        customer_id="u1",
        lines=(
            OrderLine(
                sku="bigbasket:BB-10", product_id="bigbasket:10", quantity=2, unit_price=Decimal("0.10")
            ),
        ),
        total=Decimal("0.20"),
        payment_reference="pay-1",
        placed_at=datetime(2024, 5, 1, 11, tzinfo=UTC),
    ),
    RecommendationsComputed(user_id="u1", product_ids=("bigbasket:10", "bigbasket:11")),
    RelatedProductsComputed(product_id="bigbasket:10", product_ids=("bigbasket:11",)),
    PopularProductsComputed(product_ids=("bigbasket:11", "bigbasket:10"), region="BLR"),
    TrendingComputed(
        window="hour",
        kind="queries",
        window_end=datetime(2024, 5, 1, 11, tzinfo=UTC),
        entries=(TrendingEntry(key="garlic oil", score=12.5, count=14),),
        region="BLR",
        run_id="r1",
    ),
]


def envelope_json(**overrides: object) -> bytes:
    base: dict[str, object] = {
        "event_id": "e1",
        "type": "activity.product_viewed",
        "schema_version": 1,
        "occurred_at": "2024-05-01T10:00:00Z",
        "key": "bigbasket:10",
        "revision": 3,
        "producer": "test",
        "payload": {"product_id": "bigbasket:10"},
    }
    base.update(overrides)
    return json.dumps(base).encode()


def test_samples_cover_every_payload_type() -> None:
    assert {type(p).event_type for p in SAMPLES} == set(PAYLOAD_TYPES)


@pytest.mark.parametrize("payload", SAMPLES, ids=lambda p: type(p).event_type)
def test_every_payload_round_trips(payload: Payload) -> None:
    event = new_event(payload, key="k-1", revision=7, producer="unit")
    decoded = decode_event(encode_event(event))
    assert decoded == event
    assert type(decoded.payload) is type(payload)
    assert decoded.topic == type(payload).topic
    assert decoded.occurred_at.tzinfo is not None


def test_envelope_topic_follows_payload_type() -> None:
    assert (
        new_event(
            ProductRemoved(product_id="p", supplier_id="s", sku="x"), key="p", revision=1, producer="t"
        ).topic
        == CATALOG_TOPIC
    )
    assert new_event(ProductViewed(product_id="p"), key="p", revision=1, producer="t").topic == ACTIVITY_TOPIC


def test_unknown_fields_are_ignored_everywhere() -> None:
    data = envelope_json(
        type="catalog.product_upserted",
        trace_id="abc",  # new envelope field
        payload={
            "product": {
                "product_id": "s:1",
                "supplier_id": "s",
                "sku": "X",
                "title": "T",
                "price": "1.50",
                "new_nested_field": [1, 2],
            },
            "new_payload_field": {"anything": True},
        },
    )
    event = decode_event(data)
    assert isinstance(event.payload, ProductUpserted)
    assert event.payload.product.price == Decimal("1.50")
    assert event.revision == 3


def test_defaults_fill_missing_optional_fields() -> None:
    event = decode_event(envelope_json())
    assert event.schema_version == 1
    assert event.payload == ProductViewed(product_id="bigbasket:10")


def test_unknown_type_is_a_decode_error_naming_the_type() -> None:
    with pytest.raises(EventDecodeError, match=r"unknown event type 'catalog.product_teleported'"):
        decode_event(envelope_json(type="catalog.product_teleported"))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "bad envelope: Input data was truncated"),
        (b"\xff\xfe\x00garbage", "bad envelope: JSON is malformed"),
        (b'{"event_id": "e1", "type": ', "bad envelope"),
        (b"[1, 2, 3]", "bad envelope: Expected `object`, got `array`"),
        (b"null", "bad envelope"),
        (envelope_json(revision="three"), r"bad envelope: Expected `int`, got `str` - at `\$.revision`"),
        (envelope_json(occurred_at="yesterday"), r"\$.occurred_at"),
        (b'{"type": "activity.product_viewed"}', "bad envelope: Object missing required field"),
        (
            envelope_json(payload={"product_id": 42}),
            r"bad payload for activity.product_viewed: .*\$.product_id",
        ),
        (envelope_json(payload={}), "bad payload for activity.product_viewed: Object missing required field"),
        (envelope_json(payload="not an object"), "bad payload for activity.product_viewed"),
        (
            envelope_json(type="catalog.product_upserted", payload={"product": {"price": "1"}}),
            "bad payload for catalog.product_upserted",
        ),
    ],
)
def test_malformed_bytes_are_decode_errors_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(EventDecodeError, match=reason):
        decode_event(data)


def test_decode_error_is_a_value_error() -> None:
    # callers that only know ValueError (e.g. HTTP error mapping) still get a 4xx-worthy error
    assert issubclass(EventDecodeError, ValueError)


@pytest.mark.parametrize(
    "price",
    ["0.10", "19.99", "220.00", "0.000000001", "12345678901234567890.123456789", "1E+3", "-5.50"],
)
def test_decimal_prices_are_exact(price: str) -> None:
    product = Product(product_id="s:1", supplier_id="s", sku="X", title="T", price=Decimal(price))
    encoded = encode_event(new_event(ProductUpserted(product=product), key="s:1", revision=1, producer="t"))
    wire = json.loads(encoded)
    assert wire["payload"]["product"]["price"] == str(Decimal(price)), "money travels as a string"
    decoded = decode_event(encoded).payload.product.price
    assert decoded == Decimal(price)
    assert str(decoded) == str(Decimal(price)), "scale (trailing zeros) is kept"


def test_decimal_price_given_as_json_number_keeps_its_digits() -> None:
    data = envelope_json(
        type="catalog.product_upserted",
        payload={"product": {"product_id": "s:1", "supplier_id": "s", "sku": "X", "title": "T"}},
    ).replace(b'"title": "T"', b'"title": "T", "price": 0.1')
    assert decode_event(data).payload.product.price == Decimal("0.1")


@given(st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=0, max_value=10**9))
def test_any_two_place_price_round_trips(price: Decimal) -> None:
    item = PurchasedItem(product_id="p", sku="x", quantity=1, unit_price=price)
    event = new_event(Purchased(order_id="o", user_id="u", items=(item,)), key="o", revision=1, producer="t")
    assert decode_event(encode_event(event)).payload.items[0].unit_price == price


def test_occurred_at_keeps_timezone() -> None:
    event = Envelope(
        event_id="e",
        type=ProductViewed.event_type,
        occurred_at=datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        key="p",
        revision=1,
        producer="t",
        payload=ProductViewed(product_id="p"),
    )
    assert decode_event(encode_event(event)).occurred_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_dead_letter_round_trips() -> None:
    letter = DeadLetter(
        reason="bad envelope: Input data was truncated",
        topic="catalog",
        partition=2,
        offset=41,
        key=None,
        value_b64="",
        group="search-projector",
        failed_at=datetime(2024, 5, 1, tzinfo=UTC),
    )
    assert decode_dead_letter(encode_dead_letter(letter)) == letter
