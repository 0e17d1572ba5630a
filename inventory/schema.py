"""Versioned schema migrations for both relational adapters, applied by ``kernel.migrations``.

Tables are prefixed ``inv_`` because ingest shares the same database. Each migration is a list of
statements per dialect; the shared ``schema_version`` table records what was applied (component
``inventory``; versions recorded by the former ``inv_schema_version`` table are taken over), so
``emporium inventory migrate`` and engine start are both safe to run any number of times. Append
new versions; never edit an applied one.

MySQL's reservations table has no (status, expires_at) index on purpose: expiry is driven by the
Redis expiry index (rebuilt from MySQL by reconcile), so every reservation insert maintains only the
primary key and the idempotency key - the group commit's hot path.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Final

import pymysql

from inventory.domain import MAX_SKU_LENGTH
from inventory.events import stock_level_row
from inventory.sql_common import STOCK_COLUMNS, stock_from_row
from kernel.database import MysqlTarget
from kernel.migrations import Dialect, Migration, MigrationCursor, Statement, apply_migrations

COMPONENT: Final = "inventory"
LEGACY_VERSION_TABLE: Final = "inv_schema_version"  # where the runner before kernel.migrations wrote

# Identifiers are ASCII (see domain.validate_identifier) and compared byte for byte, exactly like
# Redis keys: a server default such as utf8mb4_unicode_ci would make "sku-a" and "SKU-A" collide.
_ID = "CHARACTER SET ascii COLLATE ascii_bin"

_MYSQL_V1: Final = [
    """CREATE TABLE IF NOT EXISTS inv_meta (
        id TINYINT PRIMARY KEY,
        epoch BIGINT NOT NULL
    ) ENGINE=InnoDB""",
    "INSERT IGNORE INTO inv_meta (id, epoch) VALUES (1, 0)",
    f"""CREATE TABLE IF NOT EXISTS inv_stock (
        sku VARCHAR(128) {_ID} NOT NULL PRIMARY KEY,
        on_hand BIGINT NOT NULL DEFAULT 0,
        held BIGINT NOT NULL DEFAULT 0,
        sold BIGINT NOT NULL DEFAULT 0,
        per_customer_limit BIGINT NULL,
        revision BIGINT NOT NULL DEFAULT 0,
        feed_revision BIGINT NOT NULL DEFAULT -1,
        warehouses TEXT NULL,
        updated_at DOUBLE NOT NULL,
        CONSTRAINT inv_stock_nonneg CHECK (on_hand >= 0 AND held >= 0 AND sold >= 0)
    ) ENGINE=InnoDB""",
    f"""CREATE TABLE IF NOT EXISTS inv_reservations (
        id CHAR(32) {_ID} NOT NULL PRIMARY KEY,
        idempotency_key VARCHAR(128) {_ID} NOT NULL,
        sku VARCHAR(128) {_ID} NOT NULL,
        customer_id VARCHAR(128) {_ID} NOT NULL,
        quantity INT NOT NULL,
        status VARCHAR(10) CHARACTER SET ascii NOT NULL,
        expires_at DOUBLE NOT NULL,
        created_at DOUBLE NOT NULL,
        updated_at DOUBLE NOT NULL,
        UNIQUE KEY inv_reservations_idem (idempotency_key)
    ) ENGINE=InnoDB""",
    f"""CREATE TABLE IF NOT EXISTS inv_ledger (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        sku VARCHAR(128) {_ID} NOT NULL,
        kind VARCHAR(16) CHARACTER SET ascii NOT NULL,
        d_on_hand BIGINT NOT NULL,
        d_held BIGINT NOT NULL,
        d_sold BIGINT NOT NULL,
        reservation_id CHAR(32) {_ID} NULL,
        at DOUBLE NOT NULL
    ) ENGINE=InnoDB""",
    f"""CREATE TABLE IF NOT EXISTS inv_outbox (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        topic VARCHAR(64) NOT NULL,
        msg_key VARCHAR(128) {_ID} NOT NULL,
        value LONGBLOB NOT NULL
    ) ENGINE=InnoDB""",
]

_SQLITE_V1: Final = [
    "CREATE TABLE IF NOT EXISTS inv_meta (id INTEGER PRIMARY KEY, epoch INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO inv_meta (id, epoch) VALUES (1, 0)",
    """CREATE TABLE IF NOT EXISTS inv_stock (
        sku TEXT NOT NULL PRIMARY KEY,
        on_hand INTEGER NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
        held INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
        sold INTEGER NOT NULL DEFAULT 0 CHECK (sold >= 0),
        per_customer_limit INTEGER NULL,
        revision INTEGER NOT NULL DEFAULT 0,
        feed_revision INTEGER NOT NULL DEFAULT -1,
        warehouses TEXT NULL,
        updated_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS inv_reservations (
        id TEXT NOT NULL PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        sku TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        quantity INTEGER NOT NULL,
        status TEXT NOT NULL,
        expires_at REAL NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS inv_reservations_status_exp ON inv_reservations (status, expires_at)",
    "CREATE INDEX IF NOT EXISTS inv_reservations_sku_cust ON inv_reservations (sku, customer_id)",
    """CREATE TABLE IF NOT EXISTS inv_ledger (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sku TEXT NOT NULL,
        kind TEXT NOT NULL,
        d_on_hand INTEGER NOT NULL,
        d_held INTEGER NOT NULL,
        d_sold INTEGER NOT NULL,
        reservation_id TEXT NULL,
        at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS inv_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        msg_key TEXT NOT NULL,
        value BLOB NOT NULL
    )""",
]

# v2: defaults for the values every group-commit row repeats (a reservation is born 'held'; a
# ledger delta is zero unless given). The hot INSERTs leave those columns out: MySQL's parser and
# per-field conversion are a large share of its CPU per row. Metadata-only (instant) changes.
_MYSQL_V2: Final = [
    "ALTER TABLE inv_reservations ALTER COLUMN status SET DEFAULT 'held'",
    "ALTER TABLE inv_ledger ALTER COLUMN d_on_hand SET DEFAULT 0, ALTER COLUMN d_sold SET DEFAULT 0",
]


def _scope_skus(cur: MigrationCursor) -> None:
    """v3: rows keyed by a supplier's bare code become keyed by ``<supplier_id>:<sku>``.

    The supplier is the one whose catalog names the code (ingest's tables in the same database); a code
    several suppliers name (another supplier pushed the same code) goes to the one registered first, the
    others' items having no stock until their next feed. A code no catalog names stays as it is. The new
    keys' current stock goes to the outbox, so the search read model learns them.
    """
    mysql = cur.dialect == "mysql"
    if not all(cur.table_exists(t) for t in ("inv_stock", "ingest_products", "ingest_suppliers")):
        return
    if mysql:
        cur.execute(
            f"CREATE TEMPORARY TABLE inv_sku_owner (sku VARCHAR({MAX_SKU_LENGTH}) {_ID} PRIMARY KEY,"
            f" supplier_id VARCHAR(64) {_ID} NOT NULL) ENGINE=InnoDB"
        )
    else:
        cur.execute("CREATE TEMP TABLE inv_sku_owner (sku TEXT PRIMARY KEY, supplier_id TEXT NOT NULL)")
    cur.execute(  # in registration order: the first supplier naming a code keeps it
        f"INSERT {'IGNORE' if mysql else 'OR IGNORE'} INTO inv_sku_owner (sku, supplier_id)"
        " SELECT p.sku, p.supplier_id FROM ingest_products p"
        " JOIN ingest_suppliers s ON s.supplier_id = p.supplier_id ORDER BY s.created_at, p.supplier_id"
    )
    scoped = "CONCAT(o.supplier_id, ':', o.sku)" if mysql else "o.supplier_id || ':' || o.sku"
    for table in ("inv_stock", "inv_reservations", "inv_ledger"):
        if mysql:
            cur.execute(
                f"UPDATE {table} t JOIN inv_sku_owner o ON o.sku = t.sku"
                " SET t.sku = CONCAT(o.supplier_id, ':', t.sku)"
            )
        else:
            cur.execute(
                f"UPDATE {table} SET sku = (SELECT {scoped} FROM inv_sku_owner o WHERE o.sku = {table}.sku)"
                " WHERE sku IN (SELECT sku FROM inv_sku_owner)"
            )
    rows = cur.execute(
        f"SELECT {STOCK_COLUMNS} FROM inv_stock WHERE sku IN (SELECT {scoped} FROM inv_sku_owner o)"
    )
    p = cur.placeholder
    cur.executemany(
        f"INSERT INTO inv_outbox (topic, msg_key, value) VALUES ({p}, {p}, {p})",
        (stock_level_row(stock_from_row(row), reason="migration") for row in rows),
    )
    cur.execute(f"DROP {'TEMPORARY ' if mysql else ''}TABLE inv_sku_owner")


# v3: SKUs are supplier-scoped ("<supplier_id>:<sku>"), longer than the bare codes they were.
_MYSQL_V3: Final[list[Statement]] = [
    *(
        f"ALTER TABLE {table} MODIFY {column} VARCHAR({MAX_SKU_LENGTH}) {_ID} NOT NULL"
        for table, column in (
            ("inv_stock", "sku"),
            ("inv_reservations", "sku"),
            ("inv_ledger", "sku"),
            ("inv_outbox", "msg_key"),
        )
    ),
    _scope_skus,
]

MIGRATIONS: Final[dict[Dialect, list[Migration]]] = {
    "mysql": [Migration(1, _MYSQL_V1), Migration(2, _MYSQL_V2), Migration(3, _MYSQL_V3)],
    # the SQLite adapter writes every column itself (v2), and its TEXT keys have no length (v3)
    "sqlite": [Migration(1, _SQLITE_V1), Migration(2, []), Migration(3, [_scope_skus])],
}


def migrate_sqlite(conn: sqlite3.Connection) -> list[int]:
    """Apply pending migrations; returns the versions applied now."""
    return apply_migrations(
        conn, dialect="sqlite", component=COMPONENT, migrations=MIGRATIONS["sqlite"],
        legacy_table=LEGACY_VERSION_TABLE,
    )  # fmt: skip


async def migrate_mysql(target: MysqlTarget) -> list[int]:
    """Create the database if needed and apply pending migrations (idempotent; serialised across
    processes by a named lock); returns the versions applied now."""
    return await asyncio.to_thread(_migrate_mysql, target)


def _migrate_mysql(target: MysqlTarget) -> list[int]:
    kwargs = target.pymysql_kwargs()
    database = str(kwargs.pop("database"))
    conn = pymysql.connect(**kwargs, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
        conn.select_db(database)
        return apply_migrations(
            conn, dialect="mysql", component=COMPONENT, migrations=MIGRATIONS["mysql"],
            legacy_table=LEGACY_VERSION_TABLE,
        )  # fmt: skip
    finally:
        conn.close()
