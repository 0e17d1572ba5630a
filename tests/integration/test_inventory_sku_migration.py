"""Inventory migration 3: stock keyed by a bare SKU becomes keyed by the supplier-scoped SKU.

An inventory database of schema 2 (rows keyed by the supplier's bare code), next to the ingest tables of
the same database (which supplier's catalog names which code), on SQLite and on MariaDB. After the
migration every row, reservation and ledger movement of a code is keyed by ``<supplier_id>:<sku>``; a code
several suppliers name goes to the one registered first (the others' items have no stock until their next
feed); a code no catalog names is left as it was; and a StockLevelChanged is waiting in the outbox for
each scoped SKU, so the search read model learns the new keys.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from inventory_support import drop_mysql_database, mysql_target, mysql_url_with_database, unique_name

from ingest.store_dialects import MysqlIngestStore, SqliteIngestStore
from inventory.schema import MIGRATIONS, migrate_mysql
from inventory.sqlite import SqliteEngine
from kernel.contracts.events import StockLevelChanged, decode_event
from kernel.migrations import Dialect, apply_migrations

SUPPLIERS = [("demo", "2024-01-01T00:00:00+00:00"), ("other", "2024-06-01T00:00:00+00:00")]
PRODUCTS = [  # (supplier, product id, bare sku)
    ("demo", "demo:SYN-1", "SYN-1"),
    ("demo", "demo:SHARED", "SHARED"),
    ("other", "other:mine", "SHARED"),  # finding 1: B pushed demo's code
    ("other", "other:OWN", "OWN"),
]
STOCK = [  # (sku, on_hand, held, sold, revision, warehouses)
    ("SYN-1", 10, 2, 3, 4, '{"wh-north": 10}'),
    ("SHARED", 5, 0, 0, 1, None),
    ("OWN", 0, 0, 0, 2, '{"wh-east": 0}'),
    ("ORPHAN", 1, 0, 0, 1, None),
]


class OldDatabase:
    """A database as the code before scoped SKUs left it."""

    def __init__(self, dialect: Dialect, connect: Any) -> None:
        self.dialect, self.connect = dialect, connect
        self.p = "?" if dialect == "sqlite" else "%s"

    def seed(self) -> None:
        conn = self.connect()
        try:
            apply_migrations(
                conn, dialect=self.dialect, component="inventory", migrations=MIGRATIONS[self.dialect][:2]
            )
            ingest = SqliteIngestStore if self.dialect == "sqlite" else MysqlIngestStore
            apply_migrations(conn, dialect=self.dialect, component="ingest", migrations=ingest.migrations)
            p = self.p
            cur = conn.cursor()
            cur.executemany(
                f"INSERT INTO ingest_suppliers (supplier_id, name, key_id, key_hash, created_at)"
                f" VALUES ({p}, {p}, {p}, 'x', {p})",
                [(s, s, f"key-{s}", created) for s, created in SUPPLIERS],
            )
            cur.executemany(
                f"INSERT INTO ingest_products (supplier_id, product_id, sku, fingerprint, revision, removed)"
                f" VALUES ({p}, {p}, {p}, NULL, 1, 0)",
                PRODUCTS,
            )
            cur.executemany(
                f"INSERT INTO inv_stock (sku, on_hand, held, sold, per_customer_limit, revision,"
                f" feed_revision, warehouses, updated_at) VALUES ({p}, {p}, {p}, {p}, NULL, {p}, 3, {p}, 0)",
                STOCK,
            )
            cur.executemany(
                f"INSERT INTO inv_reservations (id, idempotency_key, sku, customer_id, quantity, status,"
                f" expires_at, created_at, updated_at)"
                f" VALUES ({p}, {p}, 'SYN-1', 'ann', {p}, {p}, 4e9, 0, 0)",
                [("a" * 32, "k-held", 2, "held"), ("b" * 32, "k-sold", 3, "confirmed")],
            )
            cur.executemany(
                f"INSERT INTO inv_ledger (sku, kind, d_on_hand, d_held, d_sold, reservation_id, at)"
                f" VALUES ({p}, {p}, {p}, 0, 0, NULL, 0)",
                [("SYN-1", "admin", 10), ("ORPHAN", "admin", 1)],
            )
            conn.commit()
        finally:
            conn.close()

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.execute(sql)
            return [tuple(row) for row in cur.fetchall()]
        finally:
            conn.close()


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.cluster)])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[OldDatabase, Any]]:
    if request.param == "sqlite":
        path = tmp_path / "emporium.db"
        db = OldDatabase("sqlite", lambda: sqlite3.connect(path, isolation_level=None))
        db.seed()
        yield db, path
        return
    url = mysql_url_with_database(request.getfixturevalue("mysql_url"), unique_name("sku_migration"))
    target = mysql_target(url)
    kwargs = target.pymysql_kwargs()
    database = kwargs.pop("database")
    server = pymysql.connect(**kwargs)
    server.cursor().execute(f"CREATE DATABASE `{database}`")
    server.close()
    db = OldDatabase("mysql", lambda: pymysql.connect(**target.pymysql_kwargs()))
    db.seed()
    try:
        yield db, target
    finally:
        drop_mysql_database(url)


async def migrate(db: OldDatabase, where: Any) -> None:
    if db.dialect == "sqlite":
        engine = SqliteEngine(where, sweep_interval=None)
        await engine.start()
        await engine.close()
    else:
        assert await migrate_mysql(where) == [3]


async def test_bare_skus_become_scoped_by_the_supplier_whose_catalog_names_them(
    old_database: tuple[OldDatabase, Any],
) -> None:
    db, where = old_database
    await migrate(db, where)

    stock = db.rows("SELECT sku, on_hand, held, sold, revision, feed_revision FROM inv_stock ORDER BY sku")
    assert stock == [
        ("ORPHAN", 1, 0, 0, 1, 3),
        ("demo:SHARED", 5, 0, 0, 1, 3),
        ("demo:SYN-1", 10, 2, 3, 4, 3),
        ("other:OWN", 0, 0, 0, 2, 3),
    ]
    assert db.rows("SELECT id, sku FROM inv_reservations ORDER BY id") == [
        ("a" * 32, "demo:SYN-1"),
        ("b" * 32, "demo:SYN-1"),
    ]
    assert db.rows("SELECT sku FROM inv_ledger ORDER BY id") == [("demo:SYN-1",), ("ORPHAN",)]

    published = [
        decode_event(bytes(value)) for (value,) in db.rows("SELECT value FROM inv_outbox ORDER BY id")
    ]
    changes = {e.payload.sku: e.payload for e in published if isinstance(e.payload, StockLevelChanged)}
    assert set(changes) == {"demo:SYN-1", "demo:SHARED", "other:OWN"}
    assert (changes["demo:SYN-1"].available, changes["demo:SYN-1"].in_stock) == (5, True)
    assert changes["other:OWN"].in_stock is False
    assert {e.key: e.revision for e in published}["demo:SYN-1"] == 4

    if db.dialect == "mysql":  # scoped SKUs are longer than the bare codes were allowed to be
        long_sku = "s" * 64 + ":" + "k" * 128
        conn = db.connect()
        conn.cursor().execute("INSERT INTO inv_stock (sku, updated_at) VALUES (%s, 0)", (long_sku,))
        conn.commit()
        conn.close()
        assert db.rows("SELECT sku FROM inv_stock WHERE sku LIKE 'sss%'") == [(long_sku,)]
    else:  # the engine answers for the scoped keys and still settles the old reservations
        engine = SqliteEngine(where, sweep_interval=None)
        await engine.start()
        try:
            assert (await engine.get_stock("demo:SYN-1")).warehouses == {"wh-north": 10}
            released = await engine.release("a" * 32)
            assert released.sku == "demo:SYN-1"
            assert (await engine.get_stock("demo:SYN-1")).available == 7
        finally:
            await engine.close()
