"""One schema migration runner for every relational store (SQLite and MySQL/MariaDB).

A component (``inventory``, ``ingest``, ``recommendations``) lists its migrations as numbered steps,
oldest first; append new ones, never edit an applied one. ``schema_version`` records which steps of
which component are applied, one row each, so several components can share a database.

Each step runs in its own transaction together with its ``schema_version`` row, under a lock that
serialises processes starting at once: SQLite's write lock (``BEGIN IMMEDIATE``; its DDL is
transactional, so a failed step leaves nothing behind) or a MySQL named lock (MySQL commits DDL
implicitly, so a MySQL step must be safe to run again: ``CREATE TABLE IF NOT EXISTS`` and the like).

A step is a list of statements; a statement may also be a function of the runner (``MigrationCursor``)
for what SQL alone cannot say (a table of another component that may not exist, rows encoded in Python);
it runs in the step's transaction like the others.

Databases migrated by the runners this one replaced keep working: when a component has no row in
``schema_version`` yet, the versions in its old table (``legacy_table``) are taken over.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, Literal, NamedTuple, Protocol, TypeAlias

Dialect = Literal["mysql", "sqlite"]

VERSION_TABLE: Final = "schema_version"
_LOCK_TIMEOUT_S: Final = 60

_VERSION_TABLE_DDL: Final[dict[Dialect, str]] = {
    "sqlite": f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (component TEXT NOT NULL,"
    " version INTEGER NOT NULL, applied_at REAL NOT NULL, PRIMARY KEY (component, version))",
    "mysql": f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE}"
    " (component VARCHAR(64) CHARACTER SET ascii NOT NULL, version INT NOT NULL,"
    " applied_at DOUBLE NOT NULL, PRIMARY KEY (component, version)) ENGINE=InnoDB",
}
_TABLE_EXISTS: Final[dict[Dialect, str]] = {
    "sqlite": "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
    "mysql": "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s",
}


class MigrationCursor(Protocol):
    """What a function statement of a step gets: the step's connection, in the step's transaction."""

    @property
    def dialect(self) -> Dialect: ...

    @property
    def placeholder(self) -> str: ...

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def table_exists(self, name: str) -> bool: ...


Statement: TypeAlias = str | Callable[[MigrationCursor], None]


class Migration(NamedTuple):
    """One numbered step: statements run in order, in one transaction where the dialect allows."""

    version: int
    statements: Sequence[Statement]


class MigrationError(RuntimeError):
    pass


def numbered(*steps: Sequence[Statement]) -> list[Migration]:
    """Migrations 1, 2, ... from their statements, in order."""
    return [Migration(version, statements) for version, statements in enumerate(steps, start=1)]


def apply_migrations(
    conn: Any,
    *,
    dialect: Dialect,
    component: str,
    migrations: Sequence[Migration],
    legacy_table: str | None = None,
) -> list[int]:
    """Apply the pending steps of ``component``; returns the versions applied now (safe to repeat).

    ``conn`` is a DB-API connection (``sqlite3`` in autocommit or default mode, or PyMySQL) with no
    transaction open.
    """
    _check_order(migrations)
    runner = _Runner(conn, dialect, component)
    with runner.locked():
        runner.execute(_VERSION_TABLE_DDL[dialect])
        runner.adopt_legacy(legacy_table)
    done: list[int] = []
    for migration in migrations:
        with runner.locked():  # read again under the lock: another process may have applied it
            if migration.version in runner.applied():
                continue
            for statement in migration.statements:
                if isinstance(statement, str):
                    runner.execute(statement)
                else:
                    statement(runner)
            runner.record([migration.version])
        done.append(migration.version)
    return done


def _check_order(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)) or (versions and versions[0] < 1):
        raise MigrationError(f"migrations must be numbered 1, 2, ... in increasing order, got {versions}")


class _Runner:
    """The dialect-specific parts: placeholders, the lock, the transaction."""

    def __init__(self, conn: Any, dialect: Dialect, component: str) -> None:
        self.conn, self.component = conn, component
        self._dialect: Dialect = dialect
        self.cursor = conn.cursor()

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    @property
    def placeholder(self) -> str:
        return "?" if self._dialect == "sqlite" else "%s"

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        self.cursor.executemany(statement, list(rows))

    def table_exists(self, name: str) -> bool:
        return bool(self.execute(_TABLE_EXISTS[self._dialect], (name,)))

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one statement (without parameters, PyMySQL leaves a '%' in it alone); returns its rows."""
        with warnings.catch_warnings():  # "already exists" is the normal case for idempotent DDL
            warnings.simplefilter("ignore")
            if params:
                self.cursor.execute(statement, params)
            else:
                self.cursor.execute(statement)
        return list(self.cursor.fetchall()) if self.cursor.description else []

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One transaction under a lock that other processes migrating the same database wait for."""
        if self.dialect == "sqlite":
            with self._sqlite_transaction():
                yield
            return
        self._mysql_named_lock("GET_LOCK(@name, %s)", _LOCK_TIMEOUT_S)
        try:
            self.cursor.execute("BEGIN")
            try:
                yield
                self.conn.commit()
            except BaseException:
                self.conn.rollback()
                raise
        finally:
            with contextlib.suppress(Exception):  # a lost connection releases it as well
                self._mysql_named_lock("RELEASE_LOCK(@name)")

    @contextmanager
    def _sqlite_transaction(self) -> Iterator[None]:
        self.cursor.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.cursor.execute("COMMIT")
        except BaseException:
            self.cursor.execute("ROLLBACK")
            raise

    def _mysql_named_lock(self, call: str, *params: Any) -> None:
        """GET_LOCK / RELEASE_LOCK of this component in this database (the lock is server-wide)."""
        self.execute(
            "SET @name = LEFT(CONCAT('migrate:', %s, ':', COALESCE(DATABASE(), '')), 64)", (self.component,)
        )
        [(answer,)] = self.execute(f"SELECT {call}", params)
        if call.startswith("GET_LOCK") and answer != 1:
            raise MigrationError(f"timed out waiting for another process to migrate {self.component}")

    def applied(self) -> set[int]:
        rows = self.execute(
            f"SELECT version FROM {VERSION_TABLE} WHERE component = {self.placeholder}", (self.component,)
        )
        return {int(version) for (version,) in rows}

    def record(self, versions: Sequence[int]) -> None:
        p = self.placeholder
        now = time.time()
        for version in versions:
            self.execute(
                f"INSERT INTO {VERSION_TABLE} (component, version, applied_at) VALUES ({p}, {p}, {p})",
                (self.component, version, now),
            )

    def adopt_legacy(self, legacy_table: str | None) -> None:
        """Take over the versions an older runner recorded in its own table (once)."""
        if legacy_table is None or self.applied():
            return
        if not self.table_exists(legacy_table):
            return
        rows = self.execute(f"SELECT DISTINCT version FROM {legacy_table}")
        self.record(sorted(int(version) for (version,) in rows if version is not None))
