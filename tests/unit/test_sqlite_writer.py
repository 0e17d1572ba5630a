"""kernel.sqlite_writer: ops queued together commit in one transaction, a failing op rolls back only
itself, and close fails what is still queued with the caller's error."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from kernel.sqlite_writer import GroupCommitWriter


class Refused(Exception):
    """A domain refusal: handed back to the caller as it is."""


class Unavailable(Exception):
    """The store's "unavailable" error."""


class Statements:
    """The statements the writer's connection ran (recorded on the writer thread)."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER PRIMARY KEY)")
        conn.set_trace_callback(self.sql.append)

    def transactions(self) -> list[str]:
        return [s for s in self.sql if s in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")]


def writer_for(path: Path, statements: Statements, **kwargs: object) -> GroupCommitWriter:
    options: dict[str, object] = {
        "name": "test",
        "migrate": statements.migrate,
        "unavailable": Unavailable,
        "passes": Refused,
        "not_started": "test store not started",
        "closed": "test store closed",
        "max_batch": 100,
        **kwargs,
    }
    return GroupCommitWriter(path, **options)


@pytest.fixture
def statements() -> Statements:
    return Statements()


@pytest.fixture
async def writer(tmp_path: Path, statements: Statements) -> AsyncIterator[GroupCommitWriter]:
    w = writer_for(tmp_path / "db" / "w.sqlite", statements)
    await w.start()
    try:
        yield w
    finally:
        await w.close()


def insert(x: int) -> Callable[[sqlite3.Connection], int]:
    def op(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t (x) VALUES (?)", (x,))
        return x

    return op


def rows(conn: sqlite3.Connection) -> list[int]:
    return [x for (x,) in conn.execute("SELECT x FROM t ORDER BY x")]


async def test_ops_queued_together_commit_in_one_transaction(
    writer: GroupCommitWriter, statements: Statements
) -> None:
    futures = [writer.submit(insert(x)) for x in range(5)]
    assert await asyncio.gather(*futures) == [0, 1, 2, 3, 4]
    assert statements.transactions() == ["BEGIN IMMEDIATE", "COMMIT"]
    assert statements.sql.count("SAVEPOINT op") == 5
    assert await writer.submit(rows) == [0, 1, 2, 3, 4]


async def test_a_batch_takes_at_most_max_batch_ops(tmp_path: Path, statements: Statements) -> None:
    w = writer_for(tmp_path / "w.sqlite", statements, max_batch=2)
    await w.start()
    try:
        assert await asyncio.gather(*(w.submit(insert(x)) for x in range(5))) == [0, 1, 2, 3, 4]
        assert statements.transactions() == ["BEGIN IMMEDIATE", "COMMIT"] * 3
    finally:
        await w.close()


async def test_a_failing_op_rolls_back_only_itself(writer: GroupCommitWriter, statements: Statements) -> None:
    refusal = Refused("no")

    def refused(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (x) VALUES (10)")
        raise refusal

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (x) VALUES (20)")
        conn.execute("INSERT INTO missing (x) VALUES (1)")

    first = writer.submit(insert(1))
    bad = writer.submit(refused)
    worse = writer.submit(broken)
    last = writer.submit(insert(2))
    results = await asyncio.gather(first, bad, worse, last, return_exceptions=True)

    assert results[0] == 1 and results[3] == 2
    assert results[1] is refusal  # a domain error reaches the caller as it is
    assert isinstance(results[2], Unavailable) and str(results[2]).startswith("database error: ")
    assert statements.transactions() == ["BEGIN IMMEDIATE", "COMMIT"]  # still one transaction
    assert await writer.submit(rows) == [1, 2]  # 10 and 20 rolled back with their ops


async def test_after_batch_runs_once_the_batch_is_answered(tmp_path: Path, statements: Statements) -> None:
    seen: list[bool] = []
    fut: asyncio.Future[int] | None = None
    w = writer_for(
        tmp_path / "w.sqlite", statements, after_batch=lambda: seen.append(fut is not None and fut.done())
    )
    await w.start()
    try:
        fut = w.submit(insert(1))
        await fut
        await asyncio.sleep(0)
        assert seen == [True]
    finally:
        await w.close()


async def test_close_fails_queued_ops_with_the_given_error(tmp_path: Path, statements: Statements) -> None:
    w = writer_for(tmp_path / "w.sqlite", statements)
    with pytest.raises(Unavailable, match="test store not started"):
        w.submit(insert(1))
    await w.start()
    assert w.started
    queued = [w.submit(insert(x)) for x in range(3)]
    await w.close()  # before the writer ran them
    for fut in queued:
        with pytest.raises(Unavailable, match="test store closed"):
            await fut
    assert not w.started
    with pytest.raises(Unavailable, match="test store not started"):
        w.submit(insert(1))
    conn = sqlite3.connect(tmp_path / "w.sqlite")
    try:
        assert rows(conn) == []  # none of them ran
    finally:
        conn.close()
