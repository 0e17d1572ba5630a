"""kernel.migrations on SQLite: numbered steps applied once, one transaction each, and the versions
recorded by the runners it replaced (inventory's inv_schema_version, ingest's ingest_schema) taken over."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from inventory.schema import migrate_sqlite
from kernel.migrations import Migration, MigrationCursor, MigrationError, apply_migrations, numbered


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


def test_a_function_statement_runs_in_the_steps_transaction(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    seen: list[bool] = []

    def copy_rows(cur: MigrationCursor) -> None:
        seen.append(cur.table_exists("a") and not cur.table_exists("nothing"))
        cur.executemany(
            f"INSERT INTO b (y) VALUES ({cur.placeholder})",
            [(x * 10,) for (x,) in cur.execute("SELECT x FROM a")],
        )

    def fail(_: MigrationCursor) -> None:
        raise RuntimeError("step 3 fails")

    steps = [*STEPS, Migration(3, ["INSERT INTO a (x) VALUES (1), (2)", copy_rows])]
    assert apply_migrations(conn, dialect="sqlite", component="c", migrations=steps) == [1, 2, 3]
    assert seen == [True] and conn.execute("SELECT y FROM b ORDER BY y").fetchall() == [(10,), (20,)]
    with pytest.raises(RuntimeError):
        apply_migrations(
            conn, dialect="sqlite", component="c", migrations=[*steps, Migration(4, ["DELETE FROM a", fail])]
        )
    assert versions(conn, "c") == [1, 2, 3] and conn.execute("SELECT COUNT(*) FROM a").fetchone() == (2,)


def test_refuses_steps_out_of_order(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    with pytest.raises(MigrationError):
        apply_migrations(conn, dialect="sqlite", component="c", migrations=[STEPS[1], STEPS[0]])


def test_inventory_database_of_the_old_runner_is_recognised(tmp_path: Path) -> None:
    conn = connect(tmp_path / "inventory.db")
    conn.execute("CREATE TABLE inv_schema_version (version INTEGER PRIMARY KEY, applied_at DOUBLE NOT NULL)")
    conn.execute("INSERT INTO inv_schema_version VALUES (1, 0), (2, 0)")  # no inv_* tables: not re-run
    assert migrate_sqlite(conn) == [3]  # (scoped SKUs: nothing to scope)
    assert versions(conn, "inventory") == [1, 2, 3]
    assert "inv_stock" not in tables(conn)


def test_fresh_inventory_database(tmp_path: Path) -> None:
    conn = connect(tmp_path / "inventory.db")
    assert migrate_sqlite(conn) == [1, 2, 3]
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
