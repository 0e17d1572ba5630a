"""The ingest store's SQL, once for SQLite and MySQL/MariaDB; the two adapters (schema, connection) are
in ``ingest.store_dialects``.

Both drivers are blocking, so every call runs in a worker thread on one connection guarded by a
lock: ingest is a low-concurrency writer (a few feeds at a time, large batches), and one connection
keeps batch upserts in a single transaction. The SQL differs only in placeholders, column types and
the upsert clause, so this base class holds the logic and each dialect is a handful of strings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
import structlog

from ingest.leases import current_holder, holder_gone
from ingest.model import FeedReport, FeedStatus, ProductState, StorefrontRecord, SupplierRecord
from ingest.store import StorefrontExists, SupplierExists
from kernel.migrations import VERSION_TABLE, Dialect, Migration, apply_migrations

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


@dataclass(frozen=True)
class _KeyTable:
    """A table of key holders: suppliers and storefronts have the same columns but for the id's name."""

    name: str
    id_column: str

    @property
    def columns(self) -> str:
        return f"{self.id_column}, name, key_id, key_hash, created_at"


_SUPPLIERS = _KeyTable("ingest_suppliers", "supplier_id")
_STOREFRONTS = _KeyTable("ingest_storefronts", "storefront_id")


def _created_at(value: str | datetime) -> datetime:
    """Stored as ISO text; a driver may hand back a naive datetime, which is UTC."""
    created = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return created if created.tzinfo else created.replace(tzinfo=UTC)


class SqlIngestStore:
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

    # -- import leases (one import per supplier at a time) ----------------------------------

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

    # -- key holders: suppliers and storefronts ---------------------------------------------

    async def _insert_key_holder(
        self, table: _KeyTable, holder_id: str, holder: SupplierRecord | StorefrontRecord
    ) -> None:
        sql = self._sql(f"INSERT INTO {table.name} ({table.columns}) VALUES (?, ?, ?, ?, ?)")
        created = holder.created_at.astimezone(UTC).isoformat()
        await self._run(_execute(sql, (holder_id, holder.name, holder.key_id, holder.key_hash, created)))

    async def _key_holder_row(self, table: _KeyTable, where: str, value: str) -> Sequence[Any] | None:
        sql = self._sql(f"SELECT {table.columns} FROM {table.name} WHERE {where} = ?")

        def get(conn: Any) -> Sequence[Any] | None:
            cur = conn.cursor()
            try:
                cur.execute(sql, (value,))
                row: Sequence[Any] | None = cur.fetchone()
                return row
            finally:
                cur.close()

        return await self._run(get)

    async def _replace_key(self, table: _KeyTable, holder_id: str, key_id: str, key_hash: str) -> None:
        sql = self._sql(f"UPDATE {table.name} SET key_id = ?, key_hash = ? WHERE {table.id_column} = ?")
        await self._run(_execute(sql, (key_id, key_hash, holder_id)))

    async def add_supplier(self, supplier: SupplierRecord) -> None:
        try:
            await self._insert_key_holder(_SUPPLIERS, supplier.supplier_id, supplier)
        except self.integrity_errors as exc:
            raise SupplierExists(supplier.supplier_id) from exc

    async def _one_supplier(self, where: str, value: str) -> SupplierRecord | None:
        row = await self._key_holder_row(_SUPPLIERS, where, value)
        if row is None:
            return None
        return SupplierRecord(
            supplier_id=row[0], name=row[1], key_id=row[2], key_hash=row[3], created_at=_created_at(row[4])
        )

    async def get_supplier(self, supplier_id: str) -> SupplierRecord | None:
        return await self._one_supplier("supplier_id", supplier_id)

    async def supplier_by_key_id(self, key_id: str) -> SupplierRecord | None:
        return await self._one_supplier("key_id", key_id)

    async def replace_key(self, supplier_id: str, key_id: str, key_hash: str) -> None:
        await self._replace_key(_SUPPLIERS, supplier_id, key_id, key_hash)

    async def upgrade_key_hash(self, key_id: str, old_hash: str, new_hash: str) -> None:
        sql = self._sql("UPDATE ingest_suppliers SET key_hash = ? WHERE key_id = ? AND key_hash = ?")
        await self._run(_execute(sql, (new_hash, key_id, old_hash)))

    async def add_storefront(self, storefront: StorefrontRecord) -> None:
        try:
            await self._insert_key_holder(_STOREFRONTS, storefront.storefront_id, storefront)
        except self.integrity_errors as exc:
            raise StorefrontExists(storefront.storefront_id) from exc

    async def _one_storefront(self, where: str, value: str) -> StorefrontRecord | None:
        row = await self._key_holder_row(_STOREFRONTS, where, value)
        if row is None:
            return None
        return StorefrontRecord(
            storefront_id=row[0], name=row[1], key_id=row[2], key_hash=row[3], created_at=_created_at(row[4])
        )

    async def get_storefront(self, storefront_id: str) -> StorefrontRecord | None:
        return await self._one_storefront("storefront_id", storefront_id)

    async def storefront_by_key_id(self, key_id: str) -> StorefrontRecord | None:
        return await self._one_storefront("key_id", key_id)

    async def replace_storefront_key(self, storefront_id: str, key_id: str, key_hash: str) -> None:
        await self._replace_key(_STOREFRONTS, storefront_id, key_id, key_hash)

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
