"""The few places where the commerce store's SQL differs between SQLite and MySQL/MariaDB (upserts,
locking reads, ``INSERT IGNORE``, money columns), and the helpers every operation runs statements
with. Statements are written with ``?`` placeholders; ``Dialect.sql`` adapts them.

``batch`` runs several statements and, on MySQL, ends the transaction in the same round trip: the
statements and a ``COMMIT`` go as one multi-statement query (the connection is opened with
``CLIENT.MULTI_STATEMENTS``; PyMySQL escapes every parameter on the client, so nothing a shopper sends
can add a statement). A round trip through PyMySQL is most of a cart edit's cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Generic, TypeVar

from commerce.domain import MAX_LINES, MAX_QUANTITY

PRICE_GENERATION = "SELECT generation FROM commerce_price_generation WHERE id = 1"
# A cart's version and the price generation in one row (each result set costs PyMySQL time); with a
# SKU, also its price (NULL: unknown or removed). Params: cart[, sku].
CART_STAMP = f"SELECT (SELECT version FROM commerce_carts WHERE cart_id = ?), ({PRICE_GENERATION})"
CART_STAMP_AND_PRICE = CART_STAMP + ", (SELECT price FROM commerce_prices WHERE sku = ?)"
BUMP_PRICE_GENERATION = "UPDATE commerce_price_generation SET generation = generation + 1 WHERE id = 1"

# The line at the SKU's current price, only if the SKU has a price and the cart has room (or the line
# already exists); the caller tells the refusals apart afterwards. ``{upsert}``: the dialect's conflict
# clause. Params: cart, quantity, now, sku, cart, cart, sku.
_PUT_LINE_IF_ROOM = (
    "INSERT INTO commerce_cart_lines (cart_id, sku, product_id, quantity, seen_price, updated_at)"
    " SELECT ?, p.sku, p.product_id, ?, p.price, ? FROM commerce_prices p"
    " WHERE p.sku = ? AND p.price IS NOT NULL"
    f" AND ((SELECT COUNT(*) FROM commerce_cart_lines WHERE cart_id = ?) < {MAX_LINES}"
    " OR EXISTS (SELECT 1 FROM commerce_cart_lines WHERE cart_id = ? AND sku = ?)) {upsert}"
)
# Every line of one cart added into another (quantities add up). Params: into, now, source.
_MERGE_LINES = (
    "INSERT INTO commerce_cart_lines (cart_id, sku, product_id, quantity, seen_price, updated_at)"
    " SELECT ?, s.sku, s.product_id, s.quantity, s.seen_price, ? FROM commerce_cart_lines s"
    " WHERE s.cart_id = ? {upsert}"
)


class Dialect:
    """SQLite's spelling; ``MYSQL`` overrides what differs."""

    name = "sqlite"
    commits_in_batch = False  # SQLite's adapter commits many operations at once (savepoints inside)
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
    # a cart's version + 1 (the row is created at 1): the first statement of every change to its lines,
    # so it also takes the cart's row lock (MySQL) and edits of one cart run one after the other
    bump_cart = (
        "INSERT INTO commerce_carts (cart_id, checkout_id, version) VALUES (?, NULL, 1)"
        " ON CONFLICT (cart_id) DO UPDATE SET version = commerce_carts.version + 1"
    )
    put_line_if_room = _PUT_LINE_IF_ROOM.format(
        upsert="ON CONFLICT (cart_id, sku) DO UPDATE SET product_id = excluded.product_id,"
        " quantity = excluded.quantity, seen_price = excluded.seen_price, updated_at = excluded.updated_at"
    )
    merge_lines = _MERGE_LINES.format(
        upsert="ON CONFLICT (cart_id, sku) DO UPDATE SET"
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
    commits_in_batch = True
    bump_cart = (
        "INSERT INTO commerce_carts (cart_id, checkout_id, version) VALUES (?, NULL, 1)"
        " ON DUPLICATE KEY UPDATE version = version + 1"
    )
    put_line_if_room = _PUT_LINE_IF_ROOM.format(
        upsert="ON DUPLICATE KEY UPDATE product_id = VALUES(product_id), quantity = VALUES(quantity),"
        " seen_price = VALUES(seen_price), updated_at = VALUES(updated_at)"
    )
    merge_lines = _MERGE_LINES.format(
        upsert="ON DUPLICATE KEY UPDATE quantity ="
        f" LEAST({MAX_QUANTITY}, commerce_cart_lines.quantity + VALUES(quantity)),"
        " updated_at = VALUES(updated_at)"
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


Statement = tuple[str, Sequence[Any]]
T = TypeVar("T")


class EndsWithBatch(Generic[T]):
    """An operation whose last round trip is ``batch``: on MySQL its transaction is already committed
    when it returns (the adapter sends no COMMIT of its own)."""

    def __init__(self, op: Callable[[Any], T]) -> None:
        self.op = op

    def __call__(self, conn: Any) -> T:
        return self.op(conn)


def batch(conn: Any, d: Dialect, statements: Sequence[Statement]) -> list[Any]:
    """Each statement's rows (a list) or, for one without rows, its row count; on MySQL all of them and a
    ``COMMIT`` in one round trip (the operation's transaction ends here: nothing may follow it)."""
    if not d.commits_in_batch:
        out: list[Any] = []
        for text, params in statements:
            cur = conn.cursor()
            try:
                cur.execute(d.sql(text), tuple(params))
                out.append(list(cur.fetchall()) if cur.description else int(cur.rowcount))
            finally:
                cur.close()
        return out
    text = ";\n".join([*(d.sql(t) for t, _ in statements), "COMMIT"])
    cur = conn.cursor()
    try:
        cur.execute(text, tuple(p for _, params in statements for p in params))
        results: list[Any] = []
        while True:
            results.append(list(cur.fetchall()) if cur.description else int(cur.rowcount))
            if not cur.nextset():
                break
        return results[:-1]  # the COMMIT's
    finally:
        cur.close()
