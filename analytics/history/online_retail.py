"""The UCI "Online Retail" invoice lines (a UK online retailer, Dec 2010 to Dec 2011) as sales (pure).

Columns: ``InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country``.

* one invoice line -> one purchase row: ``order_id`` ``online_retail:<invoice>``, ``product_id`` and
  ``sku`` ``online_retail:<StockCode>``, ``user_id`` the CustomerID as given (none for guest invoices),
  ``region`` the country, ``currency`` GBP, the price rounded to pence;
* cancellations (invoice numbers starting with ``C``) are **left out** and counted as skipped: the lake
  holds confirmed sales, and a negative row would need every reader to net it against a sale the sample
  may not even contain. Lines with a quantity or price of zero or less (stock adjustments, write-offs)
  are skipped the same way;
* ``InvoiceDate`` is the UK's local time; it is converted from Europe/London to UTC;
* ``Description`` is a product name, not a category: ``category`` stays empty rather than invented.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from analytics.history.records import LineError, Sale, Skip

PROFILE = "online_retail"
COLUMNS = ("InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country")
LONDON = ZoneInfo("Europe/London")
CENT = Decimal("0.01")
_DATE_FORMATS = ("%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M")  # the original spreadsheet's forms


def _field(line: dict[str, str | None], name: str, *, required: bool = True) -> str:
    value = (line.get(name) or "").strip()
    if required and not value:
        raise LineError(f"{name} is empty")
    return value


def _time(raw: str) -> datetime:
    try:
        local = datetime.fromisoformat(raw)
    except ValueError:
        for form in _DATE_FORMATS:
            try:
                local = datetime.strptime(raw, form)
                break
            except ValueError:
                continue
        else:
            raise LineError(f"InvoiceDate {raw!r} is not a date and time") from None
    if local.tzinfo is None:
        local = local.replace(tzinfo=LONDON)
    return local.astimezone(UTC)


def _customer(raw: str) -> str | None:
    if not raw:
        return None
    return raw[:-2] if raw.endswith(".0") else raw  # "17850.0" from spreadsheets -> "17850"


def map_line(line: dict[str, str | None], line_number: int) -> Sale | Skip:
    """One CSV line (``csv.DictReader`` fields) -> a sale, or why it is not one; LineError if malformed."""
    invoice = _field(line, "InvoiceNo")
    code = _field(line, "StockCode")
    try:
        quantity = int(_field(line, "Quantity"))
    except ValueError:
        raise LineError(f"Quantity {line.get('Quantity')!r} is not a whole number") from None
    try:
        price = Decimal(_field(line, "UnitPrice"))
    except InvalidOperation:
        raise LineError(f"UnitPrice {line.get('UnitPrice')!r} is not a number") from None
    if not price.is_finite():
        raise LineError(f"UnitPrice {line.get('UnitPrice')!r} is not a number")
    at = _time(_field(line, "InvoiceDate"))
    if invoice.upper().startswith("C"):
        return Skip("cancellation")
    if quantity <= 0 or price <= 0:
        return Skip("not a sale (quantity or price <= 0)")
    if quantity > 2**31 - 1:
        raise LineError(f"Quantity {quantity} is out of range")
    product = f"{PROFILE}:{code}"
    return Sale(
        event_id=f"{PROFILE}:{invoice}:{line_number}",
        occurred_at=at,
        order_id=f"{PROFILE}:{invoice}",
        product_id=product,
        sku=product,
        quantity=quantity,
        unit_price=price.quantize(CENT),
        currency="GBP",
        user_id=_customer(_field(line, "CustomerID", required=False)),
        region=_field(line, "Country", required=False) or None,
    )
