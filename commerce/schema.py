"""Versioned schema of the commerce store (component ``commerce`` in ``schema_version``), SQLite and
MySQL/MariaDB, applied by ``kernel.migrations``. Tables are prefixed ``commerce_``: the store shares the
relational database with ingest and inventory. Append new versions; never edit an applied one.

Cart lines are one row each, keyed by (cart, sku): every edit is an upsert or a delete of one row, so
concurrent edits of one cart never overwrite each other's lines. ``commerce_carts`` holds the claim a
checkout in progress has on its cart (one at a time) and the cart's version (v2);
``commerce_price_generation`` counts the price list's changes (v2).
"""

from __future__ import annotations

from typing import Final

from kernel.migrations import Dialect, Migration

COMPONENT: Final = "commerce"
_ID = "CHARACTER SET ascii COLLATE ascii_bin"

_MYSQL_V1: Final = [
    f"""CREATE TABLE IF NOT EXISTS commerce_prices (
        sku VARCHAR(193) {_ID} NOT NULL PRIMARY KEY,
        product_id VARCHAR(200) {_ID} NOT NULL,
        price DECIMAL(18, 4) NULL,
        currency VARCHAR(8) NOT NULL,
        title VARCHAR(500) NOT NULL,
        revision BIGINT NOT NULL
    ) ENGINE=InnoDB""",
    f"""CREATE TABLE IF NOT EXISTS commerce_cart_lines (
        cart_id VARCHAR(128) {_ID} NOT NULL,
        sku VARCHAR(193) {_ID} NOT NULL,
        product_id VARCHAR(200) {_ID} NOT NULL,
        quantity INT NOT NULL,
        seen_price DECIMAL(18, 4) NOT NULL,
        updated_at DOUBLE NOT NULL,
        PRIMARY KEY (cart_id, sku)
    ) ENGINE=InnoDB""",
    f"""CREATE TABLE IF NOT EXISTS commerce_carts (
        cart_id VARCHAR(128) {_ID} NOT NULL PRIMARY KEY,
        checkout_id VARCHAR(40) {_ID} NULL
    ) ENGINE=InnoDB""",
    f"""CREATE TABLE IF NOT EXISTS commerce_wishlist_items (
        customer_id VARCHAR(128) {_ID} NOT NULL,
        product_id VARCHAR(200) {_ID} NOT NULL,
        added_at DOUBLE NOT NULL,
        PRIMARY KEY (customer_id, product_id)
    ) ENGINE=InnoDB""",
    f"""CREATE TABLE IF NOT EXISTS commerce_checkouts (
        checkout_id VARCHAR(40) {_ID} NOT NULL PRIMARY KEY,
        customer_id VARCHAR(128) {_ID} NOT NULL,
        idempotency_key VARCHAR(128) {_ID} NOT NULL,
        status VARCHAR(10) CHARACTER SET ascii NOT NULL,
        body LONGBLOB NOT NULL,
        expires_at DOUBLE NULL,
        created_at DOUBLE NOT NULL,
        UNIQUE KEY commerce_checkouts_idem (customer_id, idempotency_key),
        KEY commerce_checkouts_due (status, expires_at)
    ) ENGINE=InnoDB""",
    f"""CREATE TABLE IF NOT EXISTS commerce_outbox (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        topic VARCHAR(64) NOT NULL,
        msg_key VARCHAR(200) {_ID} NOT NULL,
        value LONGBLOB NOT NULL
    ) ENGINE=InnoDB""",
]

_SQLITE_V1: Final = [
    """CREATE TABLE IF NOT EXISTS commerce_prices (
        sku TEXT NOT NULL PRIMARY KEY,
        product_id TEXT NOT NULL,
        price TEXT NULL,
        currency TEXT NOT NULL,
        title TEXT NOT NULL,
        revision INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS commerce_cart_lines (
        cart_id TEXT NOT NULL,
        sku TEXT NOT NULL,
        product_id TEXT NOT NULL,
        quantity INTEGER NOT NULL,
        seen_price TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (cart_id, sku)
    )""",
    "CREATE TABLE IF NOT EXISTS commerce_carts (cart_id TEXT NOT NULL PRIMARY KEY, checkout_id TEXT NULL)",
    """CREATE TABLE IF NOT EXISTS commerce_wishlist_items (
        customer_id TEXT NOT NULL,
        product_id TEXT NOT NULL,
        added_at REAL NOT NULL,
        PRIMARY KEY (customer_id, product_id)
    )""",
    """CREATE TABLE IF NOT EXISTS commerce_checkouts (
        checkout_id TEXT NOT NULL PRIMARY KEY,
        customer_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        status TEXT NOT NULL,
        body BLOB NOT NULL,
        expires_at REAL NULL,
        created_at REAL NOT NULL,
        UNIQUE (customer_id, idempotency_key)
    )""",
    "CREATE INDEX IF NOT EXISTS commerce_checkouts_due ON commerce_checkouts (status, expires_at)",
    """CREATE TABLE IF NOT EXISTS commerce_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        msg_key TEXT NOT NULL,
        value BLOB NOT NULL
    )""",
]

# v2, for the cart cache (ADR 0010): a cart's version, bumped in the transaction of every change to its
# lines, and the price list's generation, bumped in the transaction of every change to a price.
_MYSQL_V2: Final = [
    "ALTER TABLE commerce_carts ADD COLUMN version BIGINT NOT NULL DEFAULT 0",
    "CREATE TABLE IF NOT EXISTS commerce_price_generation (id INT NOT NULL PRIMARY KEY,"
    " generation BIGINT NOT NULL) ENGINE=InnoDB",
    "INSERT IGNORE INTO commerce_price_generation (id, generation) VALUES (1, 0)",
]
_SQLITE_V2: Final = [
    "ALTER TABLE commerce_carts ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
    "CREATE TABLE IF NOT EXISTS commerce_price_generation (id INTEGER NOT NULL PRIMARY KEY,"
    " generation INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO commerce_price_generation (id, generation) VALUES (1, 0)",
]

MIGRATIONS: Final[dict[Dialect, list[Migration]]] = {
    "mysql": [Migration(1, _MYSQL_V1), Migration(2, _MYSQL_V2)],
    "sqlite": [Migration(1, _SQLITE_V1), Migration(2, _SQLITE_V2)],
}
