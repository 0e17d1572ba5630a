"""kernel.migrations on SQLite: numbered steps applied once, one transaction each, and the versions
recorded by the runners it replaced (inventory's inv_schema_version, ingest's ingest_schema) taken over."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from inventory.schema import migrate_sqlite
from kernel.migrations import Migration, MigrationError, apply_migrations, numbered


def connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def versions(conn: sqlite3.Connection, component: str) -> list[int]:
    rows = conn.execute(
        "SELECT version FROM schema_version WHERE component = ? ORDER BY version", (component,)
    )
    return [v for (v,) in rows]


def tables(conn: sqlite3.Connection) -> set[str]:
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


STEPS = numbered(["CREATE TABLE a (x INTEGER)"], ["CREATE TABLE b (y INTEGER)"])


def test_applies_pending_steps_once(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    assert apply_migrations(conn, dialect="sqlite", component="c", migrations=STEPS) == [1, 2]
    assert apply_migrations(conn, dialect="sqlite", component="c", migrations=STEPS) == []
    assert {"a", "b"} <= tables(conn)
    assert versions(conn, "c") == [1, 2]
    assert versions(conn, "other") == []  # components share the table, not their versions


def test_failing_step_leaves_nothing_behind(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    broken = [STEPS[0], Migration(2, ["CREATE TABLE b (y INTEGER)", "NOT SQL"])]
    with pytest.raises(sqlite3.OperationalError):
        apply_migrations(conn, dialect="sqlite", component="c", migrations=broken)
    assert versions(conn, "c") == [1]
    assert "b" not in tables(conn)  # step 2 rolled back as a whole
    assert apply_migrations(conn, dialect="sqlite", component="c", migrations=STEPS) == [2]


def test_refuses_steps_out_of_order(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    with pytest.raises(MigrationError):
        apply_migrations(conn, dialect="sqlite", component="c", migrations=[STEPS[1], STEPS[0]])


def test_inventory_database_of_the_old_runner_is_recognised(tmp_path: Path) -> None:
    conn = connect(tmp_path / "inventory.db")
    conn.execute("CREATE TABLE inv_schema_version (version INTEGER PRIMARY KEY, applied_at DOUBLE NOT NULL)")
    conn.execute("INSERT INTO inv_schema_version VALUES (1, 0), (2, 0)")  # no inv_* tables: not re-run
    assert migrate_sqlite(conn) == []
    assert versions(conn, "inventory") == [1, 2]
    assert "inv_stock" not in tables(conn)


def test_fresh_inventory_database(tmp_path: Path) -> None:
    conn = connect(tmp_path / "inventory.db")
    assert migrate_sqlite(conn) == [1, 2]
    assert migrate_sqlite(conn) == []
    assert {"inv_stock", "inv_reservations", "inv_ledger", "inv_outbox", "inv_meta"} <= tables(conn)


def test_ingest_database_of_the_old_runner_is_recognised(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "ingest.db")  # the ingest store's connection mode
    conn.execute("CREATE TABLE ingest_schema (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO ingest_schema (version) VALUES (1)")
    conn.commit()
    done = apply_migrations(
        conn, dialect="sqlite", component="ingest", migrations=STEPS, legacy_table="ingest_schema"
    )
    assert done == [2]
    assert versions(conn, "ingest") == [1, 2]
    assert "a" not in tables(conn)
