"""The few places where the commerce store's SQL differs between SQLite and MySQL/MariaDB (upserts,
locking reads, ``INSERT IGNORE``, money columns), and the two helpers every operation runs statements
with. Statements are written with ``?`` placeholders; ``Dialect.sql`` adapts them."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from commerce.domain import MAX_QUANTITY

PRICE_AND_COUNT = (
    "SELECT p.product_id, p.price,"
    " (SELECT COUNT(*) FROM commerce_cart_lines WHERE cart_id = ?),"
    " (SELECT COUNT(*) FROM commerce_cart_lines WHERE cart_id = ? AND sku = ?)"
    " FROM commerce_prices p WHERE p.sku = ?"
)


class Dialect:
    """SQLite's spelling; ``MYSQL`` overrides what differs."""

    name = "sqlite"
    placeholder = "?"
    for_update = ""
    insert_ignore = "INSERT OR IGNORE"
    upsert_price = (
        "INSERT INTO commerce_prices (sku, product_id, price, currency, title, revision)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sku) DO UPDATE SET product_id = excluded.product_id,"
        " price = excluded.price, currency = excluded.currency, title = excluded.title,"
        " revision = excluded.revision WHERE excluded.revision > commerce_prices.revision"
    )
    upsert_line = (
        "INSERT INTO commerce_cart_lines (cart_id, sku, product_id, quantity, seen_price, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (cart_id, sku) DO UPDATE SET"
        " product_id = excluded.product_id, quantity = excluded.quantity,"
        " seen_price = excluded.seen_price, updated_at = excluded.updated_at"
    )
    merge_line = (
        "INSERT INTO commerce_cart_lines (cart_id, sku, product_id, quantity, seen_price, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (cart_id, sku) DO UPDATE SET"
        f" quantity = MIN({MAX_QUANTITY}, commerce_cart_lines.quantity + excluded.quantity),"
        " updated_at = excluded.updated_at"
    )

    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def money(self, value: Decimal) -> Any:
        return str(value)


class MysqlDialect(Dialect):
    name = "mysql"
    placeholder = "%s"
    for_update = " FOR UPDATE"
    insert_ignore = "INSERT IGNORE"
    upsert_price = (
        "INSERT INTO commerce_prices (sku, product_id, price, currency, title, revision)"
        " VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE"
        " product_id = IF(VALUES(revision) > revision, VALUES(product_id), product_id),"
        " price = IF(VALUES(revision) > revision, VALUES(price), price),"
        " currency = IF(VALUES(revision) > revision, VALUES(currency), currency),"
        " title = IF(VALUES(revision) > revision, VALUES(title), title),"
        " revision = GREATEST(revision, VALUES(revision))"
    )
    upsert_line = (
        "INSERT INTO commerce_cart_lines (cart_id, sku, product_id, quantity, seen_price, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE product_id = VALUES(product_id),"
        " quantity = VALUES(quantity), seen_price = VALUES(seen_price), updated_at = VALUES(updated_at)"
    )
    merge_line = (
        "INSERT INTO commerce_cart_lines (cart_id, sku, product_id, quantity, seen_price, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE"
        f" quantity = LEAST({MAX_QUANTITY}, quantity + VALUES(quantity)), updated_at = VALUES(updated_at)"
    )

    def money(self, value: Decimal) -> Any:
        return value


SQLITE, MYSQL = Dialect(), MysqlDialect()


def rows(conn: Any, d: Dialect, text: str, params: Sequence[Any] = ()) -> list[Any]:
    cur = conn.cursor()
    try:
        cur.execute(d.sql(text), tuple(params))
        return list(cur.fetchall()) if cur.description else []
    finally:
        cur.close()


def execute(conn: Any, d: Dialect, text: str, params: Sequence[Any] = ()) -> int:
    cur = conn.cursor()
    try:
        cur.execute(d.sql(text), tuple(params))
        return int(cur.rowcount)
    finally:
        cur.close()
