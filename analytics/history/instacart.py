"""The Instacart orders sample as sales (pure: the importer reads the files and hands their lines here).

Files (in the directory given): ``orders.csv``, ``order_products__prior.csv`` (and
``order_products__train.csv`` when present), ``products.csv``, ``aisles.csv``, ``departments.csv``.

* one order line -> one purchase row: ``order_id`` ``instacart:<order_id>``, ``product_id``
  ``instacart:<product_id>``, ``user_id`` the user as given, quantity 1, ``category``
  ``<department>><aisle>`` (e.g. ``frozen>frozen pizza``); no price, brand, region or currency exist in the
  data, so those stay empty (revenue jobs leave these rows out; recommendation jobs use them);
* the data has no timestamps, only each order's day of week, hour and days since the user's previous
  order. Times are derived, deterministically: each user's orders, by ``order_number``, are placed on a
  timeline starting at ``BASE`` (2017-01-01, the data's release year) and advanced by
  ``days_since_prior_order``; the hour is ``order_hour_of_day``. A user's orders keep their order and gaps
  (so a time-based holdout holds out later orders), but the dates are synthetic and the sample mostly has
  one order per user, so most orders fall within the first 30 days.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import msgspec

from analytics.history.records import LineError, Sale

PROFILE = "instacart"
BASE = datetime(2017, 1, 1, tzinfo=UTC)
ORDER_LINE_FILES = ("order_products__prior.csv", "order_products__train.csv")
CATALOG_FILES = ("products.csv", "aisles.csv", "departments.csv")
ORDERS_FILE = "orders.csv"

Line = dict[str, str | None]


class Order(msgspec.Struct, frozen=True):
    user_id: str
    number: int
    hour: int
    days_since_prior: float


def _int(line: Line, name: str) -> int:
    raw = (line.get(name) or "").strip()
    try:
        return int(raw)
    except ValueError:
        raise LineError(f"{name} {raw!r} is not a whole number") from None


def map_order(line: Line) -> tuple[str, Order]:
    """One ``orders.csv`` line -> (order id, order); LineError if malformed."""
    order_id = str(_int(line, "order_id"))
    user_id = str(_int(line, "user_id"))
    hour = _int(line, "order_hour_of_day")
    if not 0 <= hour <= 23:
        raise LineError(f"order_hour_of_day {hour} is not an hour")
    raw_days = (line.get("days_since_prior_order") or "").strip()
    try:
        days = float(raw_days) if raw_days else 0.0
    except ValueError:
        raise LineError(f"days_since_prior_order {raw_days!r} is not a number") from None
    if not 0 <= days <= 366:
        raise LineError(f"days_since_prior_order {raw_days!r} is out of range")
    return order_id, Order(user_id, _int(line, "order_number"), hour, days)


def order_times(orders: dict[str, Order]) -> dict[str, datetime]:
    """Each order's derived time (see the module docstring)."""
    by_user: dict[str, list[tuple[int, str, Order]]] = defaultdict(list)
    for order_id, order in orders.items():
        by_user[order.user_id].append((order.number, order_id, order))
    times: dict[str, datetime] = {}
    for user_orders in by_user.values():
        day = 0.0
        for _, order_id, order in sorted(user_orders):
            day += order.days_since_prior
            times[order_id] = BASE + timedelta(days=int(day), hours=order.hour)
    return times


def categories(
    products: Iterable[Line], aisles: Iterable[Line], departments: Iterable[Line]
) -> dict[str, str]:
    """product id -> ``<department>><aisle>`` (lines that do not parse are left out)."""
    aisle = {str(line.get("aisle_id", "")).strip(): (line.get("aisle") or "").strip() for line in aisles}
    department = {
        str(line.get("department_id", "")).strip(): (line.get("department") or "").strip()
        for line in departments
    }
    found: dict[str, str] = {}
    for line in products:
        product_id = (line.get("product_id") or "").strip()
        parts = [
            department.get((line.get("department_id") or "").strip(), ""),
            aisle.get((line.get("aisle_id") or "").strip(), ""),
        ]
        if product_id:
            found[product_id] = ">".join(part for part in parts if part)
    return found


def map_line(
    line: Line, *, orders: dict[str, Order], times: dict[str, datetime], category: dict[str, str]
) -> Sale:
    """One order line -> a sale; LineError for an unknown order or product or a malformed line."""
    order_id = str(_int(line, "order_id"))
    product_id = str(_int(line, "product_id"))
    position = _int(line, "add_to_cart_order")
    order = orders.get(order_id)
    if order is None:
        raise LineError(f"order {order_id} is not in {ORDERS_FILE}")
    if product_id not in category:
        raise LineError(f"product {product_id} is not in products.csv")
    return Sale(
        event_id=f"{PROFILE}:{order_id}:{position}:{product_id}",
        occurred_at=times[order_id],
        order_id=f"{PROFILE}:{order_id}",
        product_id=f"{PROFILE}:{product_id}",
        quantity=1,
        user_id=order.user_id,
        category=category[product_id] or None,
    )
