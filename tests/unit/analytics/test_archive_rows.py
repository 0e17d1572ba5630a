"""Activity events on the wire -> lake rows (``analytics.archive.rows``): no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
import pytest

from analytics.archive.rows import RowBuffer, UndecodableEvent, split_by_hour
from analytics.schema import ACTIVITY_SCHEMA, partition_dir
from kernel.contracts.events import (
    AddedToCart,
    Envelope,
    Payload,
    ProductViewed,
    Purchased,
    PurchasedItem,
    RecommendationsComputed,
    SearchPerformed,
    decode_event,
    encode_event,
    new_event,
)

AT = datetime(2026, 5, 4, 13, 45, 12, 345678, tzinfo=UTC)


def wire(payload: Payload, at: datetime = AT) -> tuple[Envelope, bytes]:
    event = msgspec.structs.replace(new_event(payload, key="k", revision=1, producer="t"), occurred_at=at)
    return event, encode_event(event)


def rows_of(*payloads: Payload) -> list[dict[str, object]]:
    buffer = RowBuffer()
    for payload in payloads:
        buffer.add(wire(payload)[1])
    table = buffer.to_table()
    assert table.schema.equals(ACTIVITY_SCHEMA)
    return table.to_pylist()


def test_a_search_keeps_the_query_trimmed_with_user_session_and_region() -> None:
    event, value = wire(SearchPerformed(query="  red shoes ", user_id="u1", session_id="s1", region="BLR"))
    buffer = RowBuffer()
    assert buffer.add(value) == 1
    (row,) = buffer.to_table().to_pylist()
    assert row == {
        **dict.fromkeys(ACTIVITY_SCHEMA.names),
        "event_id": event.event_id,
        "event_type": "search",
        "occurred_at": AT,
        "user_id": "u1",
        "session_id": "s1",
        "region": "BLR",
        "query": "red shoes",
        "source": "live",
    }


def test_a_view_keeps_product_category_and_brand() -> None:
    (row,) = rows_of(
        ProductViewed(product_id="p1", session_id="s", region="DEL", category="A>B", brand="Acme")
    )
    assert (row["event_type"], row["product_id"], row["category"], row["brand"]) == (
        "view",
        "p1",
        "A>B",
        "Acme",
    )
    assert (row["user_id"], row["session_id"], row["region"]) == (None, "s", "DEL")


def test_empty_category_and_brand_are_null() -> None:
    (row,) = rows_of(ProductViewed(product_id="p1"))
    assert row["category"] is None and row["brand"] is None and row["region"] is None


def test_a_cart_add_keeps_sku_quantity_and_price() -> None:
    (row,) = rows_of(
        AddedToCart(product_id="p", sku="s:1", quantity=3, user_id="u", unit_price=Decimal("9.5"))
    )
    assert (row["event_type"], row["sku"], row["quantity"], row["unit_price"]) == (
        "cart_add",
        "s:1",
        3,
        Decimal("9.50"),
    )


def test_a_purchase_is_one_row_per_item_named_by_the_order() -> None:
    items = (
        PurchasedItem(
            product_id="p1", sku="s:1", quantity=2, unit_price=Decimal("10.005"), category="A", brand="B"
        ),
        PurchasedItem(product_id="p2", sku="s:2", quantity=1, unit_price=Decimal("3")),
    )
    rows = rows_of(
        Purchased(order_id="r-1", user_id="c9", items=items, currency="INR", session_id="s", region="MUM")
    )
    assert [r["event_id"] for r in rows] == ["order:r-1:0", "order:r-1:1"]
    assert [r["unit_price"] for r in rows] == [Decimal("10.00"), Decimal("3.00")]  # half-even to cents
    assert {(r["event_type"], r["order_id"], r["user_id"], r["region"], r["currency"]) for r in rows} == {
        ("purchase", "r-1", "c9", "MUM", "INR")
    }
    assert (rows[0]["category"], rows[0]["brand"], rows[1]["category"]) == ("A", "B", None)


def test_the_same_sale_published_twice_gives_the_same_row_ids() -> None:
    sale = Purchased(
        order_id="r",
        user_id="c",
        items=(PurchasedItem(product_id="p", sku="s", quantity=1, unit_price=Decimal(1)),),
    )
    assert rows_of(sale)[0]["event_id"] == rows_of(sale)[0]["event_id"]


def test_events_that_are_not_activity_make_no_rows() -> None:
    buffer = RowBuffer()
    assert buffer.add(wire(RecommendationsComputed(user_id="u", product_ids=("p",)))[1]) == 0
    assert buffer.rows == 0 and buffer.to_table().num_rows == 0


@pytest.mark.parametrize("value", [b"not json", b'{"event_id": "x"}', b"\xff\xfe"])
def test_a_record_that_is_not_an_envelope_is_undecodable(value: bytes) -> None:
    with pytest.raises(UndecodableEvent):
        RowBuffer().add(value)


AGREEMENT = [
    SearchPerformed(query="q", user_id="u", session_id="x", region="R", filters={"sort": "price"}, total=3),
    ProductViewed(product_id="p", user_id="u", region="R", category="A>B", brand="C"),
    AddedToCart(
        product_id="p",
        sku="s",
        quantity=2,
        user_id="u",
        session_id="x",
        region="R",
        unit_price=Decimal("1.25"),
    ),
    Purchased(
        order_id="o",
        user_id="u",
        items=(
            PurchasedItem(
                product_id="p", sku="s", quantity=4, unit_price=Decimal("2.50"), category="A", brand="B"
            ),
        ),
        currency="EUR",
        session_id="x",
        region="R",
    ),
]


@pytest.mark.parametrize("payload", AGREEMENT, ids=lambda p: type(p).__name__)
def test_the_archive_reading_agrees_with_the_contract_types(payload: Payload) -> None:
    """The archive's own decoder reads from the bytes what the typed contract decoder reads."""
    event, value = wire(payload)
    decoded = decode_event(value)
    buffer = RowBuffer()
    buffer.add(value)
    (row,) = buffer.to_table().to_pylist()
    assert row["occurred_at"] == decoded.occurred_at == event.occurred_at
    source = decoded.payload.items[0] if isinstance(decoded.payload, Purchased) else decoded.payload
    for name in ("product_id", "sku", "quantity", "unit_price", "category", "brand", "query"):
        if hasattr(source, name):
            assert row[name] == (getattr(source, name) or None), name
    for name in ("user_id", "session_id", "region", "currency", "order_id"):
        if hasattr(decoded.payload, name):
            assert row[name] == getattr(decoded.payload, name), name


def test_rows_are_split_into_their_hours() -> None:
    buffer = RowBuffer()
    for minutes in (0, 10, 20, 30, 80):  # 13:45 13:55 14:05 14:15 15:05
        buffer.add(wire(SearchPerformed(query="q"), AT + timedelta(minutes=minutes))[1])
    parts = split_by_hour(buffer.to_table())
    assert [(partition_dir(hour), table.num_rows) for hour, table in parts] == [
        ("date=2026-05-04/hour=13", 2),
        ("date=2026-05-04/hour=14", 2),
        ("date=2026-05-04/hour=15", 1),
    ]
    assert split_by_hour(RowBuffer().to_table()) == []


def test_times_in_other_offsets_land_in_their_utc_hour() -> None:
    from datetime import timezone

    ist = timezone(timedelta(hours=5, minutes=30))
    buffer = RowBuffer()
    buffer.add(wire(SearchPerformed(query="q"), datetime(2026, 5, 4, 1, 10, tzinfo=ist))[1])
    ((hour, table),) = split_by_hour(buffer.to_table())
    assert partition_dir(hour) == "date=2026-05-03/hour=19"
    assert table["occurred_at"][0].as_py() == datetime(2026, 5, 3, 19, 40, tzinfo=UTC)
