"""kernel.migrations on MariaDB: inventory's migrations applied once even by processes starting
together, and the versions recorded by the runners it replaced taken over."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pymysql
import pytest
from inventory_support import drop_mysql_database, mysql_target, mysql_url_with_database, unique_name

from inventory.schema import migrate_mysql
from kernel.migrations import apply_migrations, numbered

pytestmark = pytest.mark.cluster


@pytest.fixture
def db_url(mysql_url: str) -> Iterator[str]:
    url = mysql_url_with_database(mysql_url, unique_name("migrations"))
    yield url
    drop_mysql_database(url)


def connect(url: str) -> pymysql.connections.Connection:
    return pymysql.connect(**mysql_target(url).pymysql_kwargs())


def versions(url: str, component: str) -> list[int]:
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT version FROM schema_version WHERE component = %s ORDER BY version", (component,)
            )
            return [v for (v,) in cur.fetchall()]
    finally:
        conn.close()


async def test_processes_starting_together_apply_each_step_once(db_url: str) -> None:
    target = mysql_target(db_url)
    results = await asyncio.gather(*(migrate_mysql(target) for _ in range(3)))
    assert sorted(v for applied in results for v in applied) == [1, 2, 3]
    assert await migrate_mysql(target) == []
    assert versions(db_url, "inventory") == [1, 2, 3]


async def test_inventory_database_of_the_old_runner_is_recognised(db_url: str) -> None:
    target = mysql_target(db_url)
    assert await migrate_mysql(target) == [1, 2, 3]
    conn = connect(db_url)
    with conn.cursor() as cur:  # as the old runner left it: its own table, no schema_version
        cur.execute("DROP TABLE schema_version")
        cur.execute(
            "CREATE TABLE inv_schema_version (version INTEGER PRIMARY KEY, applied_at DOUBLE NOT NULL)"
        )
        cur.execute("INSERT INTO inv_schema_version VALUES (1, 0), (2, 0)")
    conn.commit()
    conn.close()
    assert await migrate_mysql(target) == [3]  # the old runner knew only 1 and 2
    assert versions(db_url, "inventory") == [1, 2, 3]


async def test_ingest_database_of_the_old_runner_is_recognised(db_url: str) -> None:
    await migrate_mysql(mysql_target(db_url))  # creates the database
    conn = connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE ingest_schema (version INTEGER NOT NULL)")
            cur.execute("INSERT INTO ingest_schema (version) VALUES (1)")
        conn.commit()
        steps = numbered(["CREATE TABLE a (x INTEGER)"], ["CREATE TABLE b (y INTEGER)"])
        done = apply_migrations(
            conn, dialect="mysql", component="ingest", migrations=steps, legacy_table="ingest_schema"
        )
        assert done == [2]
    finally:
        conn.close()
    assert versions(db_url, "ingest") == [1, 2]
