"""The ingest store's two adapters: SQLite (embedded) and MySQL/MariaDB via PyMySQL. Each is its schema
(migrations), its upsert and replace statements and its connection; the SQL they share is
``ingest.store_sql.SqlIngestStore``.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from ingest.store_sql import SqlIngestStore
from kernel.database import MysqlTarget, SqliteTarget
from kernel.migrations import numbered


class SqliteIngestStore(SqlIngestStore):
    placeholder = "?"
    dialect = "sqlite"
    migrations = numbered(
        (
            "CREATE TABLE IF NOT EXISTS ingest_suppliers (supplier_id TEXT PRIMARY KEY, name TEXT NOT NULL,"
            " key_id TEXT NOT NULL UNIQUE, key_hash TEXT NOT NULL, created_at TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS ingest_products (supplier_id TEXT NOT NULL, product_id TEXT NOT NULL,"
            " sku TEXT NOT NULL, fingerprint BLOB, revision INTEGER NOT NULL,"
            " removed INTEGER NOT NULL DEFAULT 0,"
            " PRIMARY KEY (supplier_id, product_id)) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS ingest_feeds (feed_id TEXT PRIMARY KEY, supplier_id TEXT NOT NULL,"
            " status TEXT NOT NULL, created_at TEXT NOT NULL, report BLOB NOT NULL)",
            "CREATE INDEX IF NOT EXISTS ingest_feeds_by_supplier ON ingest_feeds (supplier_id, created_at)",
        ),
        (
            "ALTER TABLE ingest_suppliers ADD COLUMN lease_owner TEXT",
            "ALTER TABLE ingest_suppliers ADD COLUMN lease_until REAL",
        ),
        ("ALTER TABLE ingest_suppliers ADD COLUMN lease_holder TEXT",),
        (
            "CREATE TABLE IF NOT EXISTS ingest_storefronts (storefront_id TEXT PRIMARY KEY,"
            " name TEXT NOT NULL, key_id TEXT NOT NULL UNIQUE, key_hash TEXT NOT NULL,"
            " created_at TEXT NOT NULL)",
        ),
    )
    upsert_product_sql = (
        "INSERT INTO ingest_products (supplier_id, product_id, sku, fingerprint, revision, removed)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (supplier_id, product_id) DO UPDATE SET"
        " sku = excluded.sku, fingerprint = excluded.fingerprint, revision = excluded.revision,"
        " removed = excluded.removed"
    )
    replace_feed_sql = (
        "REPLACE INTO ingest_feeds (feed_id, supplier_id, status, created_at, report) VALUES (?, ?, ?, ?, ?)"
    )
    integrity_errors = (sqlite3.IntegrityError,)

    def __init__(self, target: SqliteTarget) -> None:
        super().__init__()
        self.target = target

    def _connect(self) -> sqlite3.Connection:
        if str(self.target.path) != ":memory:":
            self.target.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.target.path, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        conn.execute("PRAGMA busy_timeout=30000")
        return conn


class MysqlIngestStore(SqlIngestStore):
    placeholder = "%s"
    dialect = "mysql"
    migrations = numbered(
        (
            "CREATE TABLE IF NOT EXISTS ingest_suppliers (supplier_id VARCHAR(64) PRIMARY KEY,"
            " name VARCHAR(200) NOT NULL, key_id VARCHAR(32) NOT NULL UNIQUE, key_hash VARCHAR(200) NOT NULL,"
            " created_at VARCHAR(40) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            "CREATE TABLE IF NOT EXISTS ingest_products (supplier_id VARCHAR(64) NOT NULL,"
            " product_id VARCHAR(200) NOT NULL, sku VARCHAR(128) NOT NULL, fingerprint VARBINARY(32) NULL,"
            " revision BIGINT NOT NULL, removed TINYINT NOT NULL DEFAULT 0,"
            " PRIMARY KEY (supplier_id, product_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            "CREATE TABLE IF NOT EXISTS ingest_feeds (feed_id VARCHAR(64) PRIMARY KEY,"
            " supplier_id VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL, created_at VARCHAR(40) NOT NULL,"
            " report MEDIUMBLOB NOT NULL, KEY ingest_feeds_by_supplier (supplier_id, created_at))"
            " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        ),
        (
            "ALTER TABLE ingest_suppliers ADD COLUMN lease_owner VARCHAR(64) NULL,"
            " ADD COLUMN lease_until DOUBLE NULL",
        ),
        ("ALTER TABLE ingest_suppliers ADD COLUMN lease_holder VARCHAR(255) NULL",),
        (
            "CREATE TABLE IF NOT EXISTS ingest_storefronts (storefront_id VARCHAR(64) PRIMARY KEY,"
            " name VARCHAR(200) NOT NULL, key_id VARCHAR(32) NOT NULL UNIQUE,"
            " key_hash VARCHAR(200) NOT NULL, created_at VARCHAR(40) NOT NULL)"
            " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        ),
    )
    upsert_product_sql = (
        "INSERT INTO ingest_products (supplier_id, product_id, sku, fingerprint, revision, removed)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE sku = VALUES(sku),"
        " fingerprint = VALUES(fingerprint), revision = VALUES(revision), removed = VALUES(removed)"
    )
    replace_feed_sql = (
        "REPLACE INTO ingest_feeds (feed_id, supplier_id, status, created_at, report)"
        " VALUES (%s, %s, %s, %s, %s)"
    )

    def __init__(self, target: MysqlTarget) -> None:
        super().__init__()
        import pymysql

        self.target = target
        self.integrity_errors = (pymysql.err.IntegrityError,)

    def _connect(self) -> Any:
        import pymysql

        kwargs = self.target.pymysql_kwargs()
        database = str(kwargs.pop("database"))
        if not re.fullmatch(r"[A-Za-z0-9_$]{1,64}", database):
            raise ValueError(f"unsupported MySQL database name {database!r}")
        conn = pymysql.connect(**kwargs, connect_timeout=5)
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
        conn.select_db(database)
        return conn

    def _before(self, conn: Any) -> Any:
        import pymysql

        try:
            conn.ping()
            return conn
        except pymysql.err.Error:
            try:
                conn.close()
            except pymysql.err.Error:
                pass
            return self._connect()
