"""SQL adapters of the ingest store: SQLite (embedded) and MySQL/MariaDB via PyMySQL.

Both drivers are blocking, so every call runs in a worker thread on one connection guarded by a
lock: ingest is a low-concurrency writer (a few feeds at a time, large batches), and one connection
keeps batch upserts in a single transaction. The SQL differs only in placeholders, column types and
the upsert clause, so one base class holds the logic and each dialect is a handful of strings.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
import structlog

from ingest.leases import current_holder, holder_gone
from ingest.model import FeedReport, FeedStatus, ProductState, StorefrontRecord, SupplierRecord
from ingest.store import StorefrontExists, SupplierExists
from kernel.database import MysqlTarget, SqliteTarget
from kernel.migrations import VERSION_TABLE, Dialect, Migration, apply_migrations, numbered

T = TypeVar("T")
log = structlog.get_logger(__name__)

_IN_CHUNK = 2000  # ids per IN (...) query: under SQLite's 32766 and MySQL's 65535 parameter limits

_report_decoder = msgspec.json.Decoder(FeedReport)


def _execute(sql: str, params: Sequence[Any], *, many: bool = False) -> Callable[[Any], None]:
    """A unit of work that closes its cursor in the worker thread.

    A cursor must never be handed back to the event-loop thread: dropping it there finalizes its
    statement while another worker may be using the same connection (SQLITE_MISUSE).
    """

    def run(conn: Any) -> None:
        cur = conn.cursor()
        try:
            if many:
                cur.executemany(sql, params)
            else:
                cur.execute(sql, params)
        finally:
            cur.close()

    return run


class _SqlIngestStore:
    placeholder = "?"
    dialect: Dialect = "sqlite"
    migrations: Sequence[Migration] = ()
    upsert_product_sql = ""
    replace_feed_sql = ""
    integrity_errors: tuple[type[Exception], ...] = ()

    def __init__(self) -> None:
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self.holder = current_holder()  # written with every lease this store takes

    # -- plumbing ---------------------------------------------------------------------------

    def _connect(self) -> Any:
        raise NotImplementedError

    def _before(self, conn: Any) -> Any:
        """Hook run before each unit of work; returns the connection to use (MySQL reconnects here)."""
        return conn

    async def _run(self, fn: Callable[[Any], T]) -> T:
        async with self._lock:
            return await asyncio.to_thread(self._work, fn)

    def _work(self, fn: Callable[[Any], T]) -> T:
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn = self._before(self._conn)
        try:
            result = fn(conn)
            conn.commit()
            return result
        except BaseException:
            try:
                conn.rollback()
            except Exception:
                self._conn = None
            raise

    def _sql(self, text: str) -> str:
        return text.replace("?", self.placeholder) if self.placeholder != "?" else text

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        await self._run(self._migrate)
        interrupted = await self._run(self._recover_interrupted_imports)
        if interrupted:
            log.warning("ingest.interrupted_imports_failed", feeds=interrupted)

    def _migrate(self, conn: Any) -> None:
        apply_migrations(
            conn, dialect=self.dialect, component="ingest", migrations=self.migrations,
            legacy_table="ingest_schema",  # where ingest recorded its versions before kernel.migrations
        )  # fmt: skip

    def _recover_interrupted_imports(self, conn: Any) -> list[str]:
        """Release leases whose holder is gone or that expired; mark ``failed`` every report still
        ``processing`` without a live lease (its importer crashed). Returns those feed ids."""
        now = time.time()
        cur = conn.cursor()
        live: set[str] = set()
        cur.execute(
            "SELECT supplier_id, lease_owner, lease_until, lease_holder FROM ingest_suppliers"
            " WHERE lease_owner IS NOT NULL"
        )
        for supplier_id, owner, until, holder in cur.fetchall():
            if (until is not None and until < now) or holder_gone(holder):
                cur.execute(self._release_sql, (supplier_id, owner))
            else:
                live.add(owner)
        cur.execute(
            self._sql("SELECT feed_id, report FROM ingest_feeds WHERE status = ?"), (FeedStatus.PROCESSING,)
        )
        interrupted = [(feed_id, raw) for feed_id, raw in cur.fetchall() if feed_id not in live]
        for feed_id, raw in interrupted:
            report = _report_decoder.decode(bytes(raw))
            report.status = FeedStatus.FAILED
            report.finished_at = datetime.now(UTC)
            report.notes.append(
                "interrupted: the process importing it stopped (crash or kill); re-push the feed"
            )
            cur.execute(
                self._sql("UPDATE ingest_feeds SET status = ?, report = ? WHERE feed_id = ?"),
                (str(report.status), msgspec.json.encode(report), feed_id),
            )
        cur.close()
        return [feed_id for feed_id, _ in interrupted]

    @property
    def _release_sql(self) -> str:
        return self._sql(
            "UPDATE ingest_suppliers SET lease_owner = NULL, lease_until = NULL, lease_holder = NULL"
            " WHERE supplier_id = ? AND lease_owner = ?"
        )

    async def ping(self) -> None:
        def ping(conn: Any) -> None:
            cur = conn.cursor()
            cur.execute(f"SELECT COUNT(*) FROM {VERSION_TABLE}")
            cur.fetchone()

        await self._run(ping)

    async def close(self) -> None:
        async with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                await asyncio.to_thread(conn.close)

    # -- suppliers --------------------------------------------------------------------------

    _SUPPLIER_COLUMNS = "supplier_id, name, key_id, key_hash, created_at"

    @staticmethod
    def _supplier(row: Sequence[Any] | None) -> SupplierRecord | None:
        if row is None:
            return None
        created = row[4] if isinstance(row[4], datetime) else datetime.fromisoformat(row[4])
        return SupplierRecord(
            supplier_id=row[0],
            name=row[1],
            key_id=row[2],
            key_hash=row[3],
            created_at=created if created.tzinfo else created.replace(tzinfo=UTC),
        )

    async def add_supplier(self, supplier: SupplierRecord) -> None:
        sql = self._sql(f"INSERT INTO ingest_suppliers ({self._SUPPLIER_COLUMNS}) VALUES (?, ?, ?, ?, ?)")

        def add(conn: Any) -> None:
            conn.cursor().execute(
                sql,
                (
                    supplier.supplier_id,
                    supplier.name,
                    supplier.key_id,
                    supplier.key_hash,
                    supplier.created_at.astimezone(UTC).isoformat(),
                ),
            )

        try:
            await self._run(add)
        except self.integrity_errors as exc:
            raise SupplierExists(supplier.supplier_id) from exc

    async def _one_supplier(self, where: str, value: str) -> SupplierRecord | None:
        sql = self._sql(f"SELECT {self._SUPPLIER_COLUMNS} FROM ingest_suppliers WHERE {where} = ?")

        def get(conn: Any) -> SupplierRecord | None:
            cur = conn.cursor()
            cur.execute(sql, (value,))
            return self._supplier(cur.fetchone())

        return await self._run(get)

    async def get_supplier(self, supplier_id: str) -> SupplierRecord | None:
        return await self._one_supplier("supplier_id", supplier_id)

    async def supplier_by_key_id(self, key_id: str) -> SupplierRecord | None:
        return await self._one_supplier("key_id", key_id)

    async def replace_key(self, supplier_id: str, key_id: str, key_hash: str) -> None:
        sql = self._sql("UPDATE ingest_suppliers SET key_id = ?, key_hash = ? WHERE supplier_id = ?")
        await self._run(_execute(sql, (key_id, key_hash, supplier_id)))

    async def upgrade_key_hash(self, key_id: str, old_hash: str, new_hash: str) -> None:
        sql = self._sql("UPDATE ingest_suppliers SET key_hash = ? WHERE key_id = ? AND key_hash = ?")
        await self._run(_execute(sql, (new_hash, key_id, old_hash)))

    # -- storefronts ------------------------------------------------------------------------

    _STOREFRONT_COLUMNS = "storefront_id, name, key_id, key_hash, created_at"

    @staticmethod
    def _storefront(row: Sequence[Any] | None) -> StorefrontRecord | None:
        if row is None:
            return None
        created = row[4] if isinstance(row[4], datetime) else datetime.fromisoformat(row[4])
        return StorefrontRecord(
            storefront_id=row[0],
            name=row[1],
            key_id=row[2],
            key_hash=row[3],
            created_at=created if created.tzinfo else created.replace(tzinfo=UTC),
        )

    async def add_storefront(self, storefront: StorefrontRecord) -> None:
        sql = self._sql(f"INSERT INTO ingest_storefronts ({self._STOREFRONT_COLUMNS}) VALUES (?, ?, ?, ?, ?)")
        row = (
            storefront.storefront_id,
            storefront.name,
            storefront.key_id,
            storefront.key_hash,
            storefront.created_at.astimezone(UTC).isoformat(),
        )
        try:
            await self._run(_execute(sql, row))
        except self.integrity_errors as exc:
            raise StorefrontExists(storefront.storefront_id) from exc

    async def _one_storefront(self, where: str, value: str) -> StorefrontRecord | None:
        sql = self._sql(f"SELECT {self._STOREFRONT_COLUMNS} FROM ingest_storefronts WHERE {where} = ?")

        def get(conn: Any) -> StorefrontRecord | None:
            cur = conn.cursor()
            try:
                cur.execute(sql, (value,))
                return self._storefront(cur.fetchone())
            finally:
                cur.close()

        return await self._run(get)

    async def get_storefront(self, storefront_id: str) -> StorefrontRecord | None:
        return await self._one_storefront("storefront_id", storefront_id)

    async def storefront_by_key_id(self, key_id: str) -> StorefrontRecord | None:
        return await self._one_storefront("key_id", key_id)

    async def replace_storefront_key(self, storefront_id: str, key_id: str, key_hash: str) -> None:
        sql = self._sql("UPDATE ingest_storefronts SET key_id = ?, key_hash = ? WHERE storefront_id = ?")
        await self._run(_execute(sql, (key_id, key_hash, storefront_id)))

    async def acquire_import_lease(self, supplier_id: str, owner: str, ttl_s: float) -> bool:
        now = time.time()
        sql = self._sql(
            "UPDATE ingest_suppliers SET lease_owner = ?, lease_until = ?, lease_holder = ?"
            " WHERE supplier_id = ? AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)"
        )
        params = (owner, now + ttl_s, self.holder, supplier_id, owner, now)

        def acquire(conn: Any) -> bool:
            cur = conn.cursor()
            try:
                cur.execute(sql, params)
                return bool(cur.rowcount == 1)
            finally:
                cur.close()

        return await self._run(acquire)

    async def release_import_lease(self, supplier_id: str, owner: str) -> None:
        await self._run(_execute(self._release_sql, (supplier_id, owner)))

    # -- products ---------------------------------------------------------------------------

    @staticmethod
    def _state(row: Sequence[Any]) -> ProductState:
        fp = row[2]
        return ProductState(row[0], row[1], bytes(fp) if fp is not None else None, int(row[3]), bool(row[4]))

    async def product_states(self, supplier_id: str, product_ids: Sequence[str]) -> dict[str, ProductState]:
        if not product_ids:
            return {}

        def get(conn: Any) -> dict[str, ProductState]:
            cur = conn.cursor()
            found: dict[str, ProductState] = {}
            for i in range(0, len(product_ids), _IN_CHUNK):
                chunk = product_ids[i : i + _IN_CHUNK]
                marks = ", ".join([self.placeholder] * len(chunk))
                cur.execute(
                    self._sql(
                        "SELECT product_id, sku, fingerprint, revision, removed FROM ingest_products "
                        "WHERE supplier_id = ? AND product_id IN ("
                    )
                    + marks
                    + ")",
                    (supplier_id, *chunk),
                )
                for row in cur.fetchall():
                    found[row[0]] = self._state(row)
            return found

        return await self._run(get)

    async def live_products(self, supplier_id: str) -> list[ProductState]:
        sql = self._sql(
            "SELECT product_id, sku, fingerprint, revision, removed FROM ingest_products "
            "WHERE supplier_id = ? AND removed = 0"
        )

        def get(conn: Any) -> list[ProductState]:
            cur = conn.cursor()
            cur.execute(sql, (supplier_id,))
            return [self._state(r) for r in cur.fetchall()]

        return await self._run(get)

    async def save_product_states(self, supplier_id: str, states: Sequence[ProductState]) -> None:
        if not states:
            return
        rows = [(supplier_id, s.product_id, s.sku, s.fingerprint, s.revision, int(s.removed)) for s in states]
        sql = self.upsert_product_sql
        await self._run(_execute(sql, rows, many=True))

    # -- feeds ------------------------------------------------------------------------------

    async def save_feed(self, report: FeedReport) -> None:
        row = (
            report.feed_id,
            report.supplier_id,
            str(report.status),
            report.created_at.astimezone(UTC).isoformat(),
            msgspec.json.encode(report),
        )
        sql = self.replace_feed_sql
        await self._run(_execute(sql, row))

    async def get_feed(self, supplier_id: str, feed_id: str) -> FeedReport | None:
        sql = self._sql("SELECT report FROM ingest_feeds WHERE feed_id = ? AND supplier_id = ?")

        def get(conn: Any) -> FeedReport | None:
            cur = conn.cursor()
            cur.execute(sql, (feed_id, supplier_id))
            row = cur.fetchone()
            return _report_decoder.decode(bytes(row[0])) if row else None

        return await self._run(get)


class SqliteIngestStore(_SqlIngestStore):
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


class MysqlIngestStore(_SqlIngestStore):
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
