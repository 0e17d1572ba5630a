"""The analytics lake's contract: the archived activity table (one row per shopper action).

Every writer (the live archive consumer, ``analytics import-history``) produces rows of
``ACTIVITY_SCHEMA`` under ``<lake>/activity/date=YYYY-MM-DD/hour=HH/``; every reader (the Spark jobs,
DuckDB, pandas) reads that layout. A purchase of several items is one row per item.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import pyarrow as pa

ACTIVITY_TABLE: Final = "activity"

# event_type values
SEARCH: Final = "search"
VIEW: Final = "view"
CART_ADD: Final = "cart_add"
PURCHASE: Final = "purchase"
EVENT_TYPES: Final = (SEARCH, VIEW, CART_ADD, PURCHASE)

# source values: where a row came from
LIVE: Final = "live"

ACTIVITY_SCHEMA: Final = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),  # unique per row (item rows: <event_id>:<n>)
        pa.field("event_type", pa.string(), nullable=False),  # one of EVENT_TYPES
        pa.field("occurred_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("user_id", pa.string()),  # the signed-in shopper, when known
        pa.field("session_id", pa.string()),  # the guest session, when known
        pa.field("region", pa.string()),  # delivery region (city code), when known
        pa.field("query", pa.string()),  # searches: the query as typed, trimmed
        pa.field("product_id", pa.string()),  # views, cart adds, purchases
        pa.field("sku", pa.string()),  # cart adds, purchases (supplier-scoped)
        pa.field("quantity", pa.int32()),  # cart adds, purchases
        pa.field("unit_price", pa.decimal128(18, 2)),  # cart adds, purchases
        pa.field("currency", pa.string()),
        pa.field("category", pa.string()),
        pa.field("brand", pa.string()),
        pa.field("order_id", pa.string()),  # purchases
        pa.field("source", pa.string(), nullable=False),  # LIVE, or the history profile it came from
    ]
)

PARTITION_COLUMNS: Final = ("date", "hour")


def partition_dir(occurred_at: datetime) -> str:
    """The hive-style partition (relative to the table) of a row that happened at ``occurred_at`` (UTC)."""
    return f"date={occurred_at:%Y-%m-%d}/hour={occurred_at:%H}"
