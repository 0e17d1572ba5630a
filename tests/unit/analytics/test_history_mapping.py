"""History profiles: lines -> sales (``analytics.history.online_retail`` / ``instacart``): no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from analytics.history import instacart, online_retail
from analytics.history.records import LineError, Sale, SaleColumns, Skip
from analytics.schema import ACTIVITY_SCHEMA


def retail(**overrides: str) -> dict[str, str | None]:
    line: dict[str, str | None] = {
        "InvoiceNo": "536365",
        "StockCode": "85123A",
        "Description": "WHITE HANGING HEART T-LIGHT HOLDER",
        "Quantity": "6",
        "InvoiceDate": "2011-06-01T08:26:00",
        "UnitPrice": "2.5499999999999998",
        "CustomerID": "17850.0",
        "Country": "United Kingdom",
    }
    return {**line, **overrides}


def test_an_invoice_line_is_one_sale() -> None:
    sale = online_retail.map_line(retail(), 7)
    assert sale == Sale(
        event_id="online_retail:536365:7",
        occurred_at=datetime(2011, 6, 1, 7, 26, tzinfo=UTC),  # British Summer Time -> UTC
        order_id="online_retail:536365",
        product_id="online_retail:85123A",
        sku="online_retail:85123A",
        quantity=6,
        unit_price=Decimal("2.55"),
        currency="GBP",
        user_id="17850",
        region="United Kingdom",
    )


def test_winter_times_are_already_utc_and_the_spreadsheet_date_form_is_read() -> None:
    sale = online_retail.map_line(retail(InvoiceDate="12/1/2010 8:26"), 2)
    assert isinstance(sale, Sale) and sale.occurred_at == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)


def test_a_guest_invoice_has_no_user() -> None:
    sale = online_retail.map_line(retail(CustomerID=""), 2)
    assert isinstance(sale, Sale) and sale.user_id is None


def test_cancellations_and_adjustments_are_skipped_not_rejected() -> None:
    assert online_retail.map_line(retail(InvoiceNo="C536379", Quantity="-1"), 2) == Skip("cancellation")
    assert isinstance(online_retail.map_line(retail(Quantity="-6", UnitPrice="0"), 2), Skip)
    assert isinstance(online_retail.map_line(retail(UnitPrice="0"), 2), Skip)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("Quantity", "six", "Quantity 'six' is not a whole number"),
        ("UnitPrice", "cheap", "UnitPrice 'cheap' is not a number"),
        ("UnitPrice", "NaN", "UnitPrice 'NaN' is not a number"),
        ("InvoiceDate", "yesterday", "InvoiceDate 'yesterday' is not a date and time"),
        ("StockCode", "", "StockCode is empty"),
        ("InvoiceNo", None, "InvoiceNo is empty"),
    ],
)
def test_malformed_lines_say_why(field: str, value: str | None, reason: str) -> None:
    with pytest.raises(LineError) as caught:
        online_retail.map_line({**retail(), field: value}, 3)
    assert str(caught.value) == reason


def order(**overrides: str) -> dict[str, str | None]:
    line: dict[str, str | None] = {
        "order_id": "10",
        "user_id": "7",
        "eval_set": "prior",
        "order_number": "2",
        "order_dow": "3",
        "order_hour_of_day": "09",
        "days_since_prior_order": "6.0",
    }
    return {**line, **overrides}


def test_instacart_times_follow_each_users_orders_from_the_base_date() -> None:
    orders = dict(
        instacart.map_order(line)
        for line in (
            order(),
            order(order_id="11", order_number="3", order_hour_of_day="18", days_since_prior_order="4"),
            order(order_id="20", user_id="8", order_number="1", days_since_prior_order=""),
        )
    )
    times = instacart.order_times(orders)
    assert times == {
        "10": datetime(2017, 1, 7, 9, tzinfo=UTC),
        "11": datetime(2017, 1, 11, 18, tzinfo=UTC),
        "20": datetime(2017, 1, 1, 9, tzinfo=UTC),
    }
    assert instacart.order_times(orders) == times  # deterministic


def test_an_instacart_order_line_is_a_sale_with_department_and_aisle_as_category() -> None:
    orders = dict([instacart.map_order(order())])
    category = instacart.categories(
        [{"product_id": "5", "product_name": "Pizza", "aisle_id": "1", "department_id": "2"}],
        [{"aisle_id": "1", "aisle": "frozen pizza"}],
        [{"department_id": "2", "department": "frozen"}],
    )
    times = instacart.order_times(orders)
    line = {"order_id": "10", "product_id": "5", "add_to_cart_order": "1", "reordered": "0"}
    sale = instacart.map_line(line, orders=orders, times=times, category=category)
    assert (sale.order_id, sale.product_id, sale.user_id, sale.quantity, sale.category, sale.unit_price) == (
        "instacart:10",
        "instacart:5",
        "7",
        1,
        "frozen>frozen pizza",
        None,
    )
    with pytest.raises(LineError, match=r"order 99 is not in orders\.csv"):
        instacart.map_line({**line, "order_id": "99"}, orders=orders, times=times, category=category)
    with pytest.raises(LineError, match=r"product 6 is not in products\.csv"):
        instacart.map_line({**line, "product_id": "6"}, orders=orders, times=times, category=category)
    with pytest.raises(LineError, match="hour"):
        instacart.map_order(order(order_hour_of_day="25"))


def test_sales_become_rows_of_the_activity_schema_with_their_source() -> None:
    columns = SaleColumns("online_retail")
    sale = online_retail.map_line(retail(), 2)
    assert isinstance(sale, Sale)
    columns.add(sale)
    table = columns.to_table()
    assert table.schema.equals(ACTIVITY_SCHEMA)
    (row,) = table.to_pylist()
    assert (row["event_type"], row["source"], row["unit_price"]) == (
        "purchase",
        "online_retail",
        Decimal("2.55"),
    )
