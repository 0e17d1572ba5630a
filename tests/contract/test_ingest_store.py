"""One contract suite for the ingest store port, run against SQLite and MySQL/MariaDB (never skipped)."""

from __future__ import annotations

import os
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pymysql
import pytest

from emporium.adapters import INGEST_STORE
from ingest.leases import current_holder
from ingest.model import FeedReport, FeedStatus, ProductState, StorefrontRecord, SupplierRecord
from ingest.parsing import LineError
from ingest.store import IngestStore, StorefrontExists, SupplierExists
from ingest.store_dialects import SqliteIngestStore
from kernel.database import MysqlTarget, parse_database_url
from kernel.migrations import apply_migrations


@pytest.fixture(scope="session")
def ingest_mysql_url(mysql_url: str) -> Iterator[str]:
    """A database of its own for this session, dropped at the end."""
    name = f"ingest_ct_{uuid.uuid4().hex[:10]}"
    parts = urlsplit(mysql_url)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    yield url
    target = parse_database_url(url)
    assert isinstance(target, MysqlTarget)
    conn = pymysql.connect(host=target.host, port=target.port, user=target.user, password=target.password)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.cluster)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ingest.db'}"
    return str(request.getfixturevalue("ingest_mysql_url"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[IngestStore]:
    s = INGEST_STORE.open(store_url)
    await s.start()
    await s.start()  # migrations are idempotent
    try:
        yield s
    finally:
        await s.close()


def supplier(sid: str) -> SupplierRecord:
    return SupplierRecord(
        supplier_id=sid,
        name=f"Name {sid}",
        key_id=uuid.uuid4().hex[:12],
        key_hash="scrypt$x",
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_suppliers(store: IngestStore) -> None:
    rec = supplier(uid("sup"))
    await store.add_supplier(rec)
    assert await store.get_supplier(rec.supplier_id) == rec
    assert await store.supplier_by_key_id(rec.key_id) == rec
    assert await store.get_supplier(uid("none")) is None
    assert await store.supplier_by_key_id("000000000000") is None
    with pytest.raises(SupplierExists):
        await store.add_supplier(rec)
    await store.replace_key(rec.supplier_id, "abcdefabcdef", "scrypt$y")
    assert await store.supplier_by_key_id(rec.key_id) is None
    rotated = await store.supplier_by_key_id("abcdefabcdef")
    assert rotated is not None and rotated.key_hash == "scrypt$y"
    await store.upgrade_key_hash("abcdefabcdef", "scrypt$old", "hmac-sha256$z")  # not the stored hash
    assert await store.supplier_by_key_id("abcdefabcdef") == rotated
    await store.upgrade_key_hash("abcdefabcdef", "scrypt$y", "hmac-sha256$z")
    upgraded = await store.supplier_by_key_id("abcdefabcdef")
    assert upgraded is not None and upgraded.key_hash == "hmac-sha256$z"


async def test_storefronts_are_apart_from_suppliers(store: IngestStore) -> None:
    sid = uid("shop")
    rec = StorefrontRecord(
        storefront_id=sid,
        name=f"Shop {sid}",
        key_id=uuid.uuid4().hex[:12],
        key_hash="hmac-sha256$x",
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    await store.add_storefront(rec)
    assert await store.get_storefront(sid) == rec
    assert await store.storefront_by_key_id(rec.key_id) == rec
    assert await store.supplier_by_key_id(rec.key_id) is None  # a storefront key is no supplier key
    assert await store.get_storefront(uid("none")) is None
    with pytest.raises(StorefrontExists):
        await store.add_storefront(rec)
    await store.add_supplier(supplier(sid))  # the same id may name a supplier too: other table
    await store.replace_storefront_key(sid, "abcdef012345", "hmac-sha256$y")
    assert await store.storefront_by_key_id(rec.key_id) is None
    rotated = await store.storefront_by_key_id("abcdef012345")
    assert rotated is not None and rotated.key_hash == "hmac-sha256$y"


async def test_product_states_upsert_lookup_and_isolation(store: IngestStore) -> None:
    a, b = uid("a"), uid("b")
    states = [ProductState(f"{a}:{i}", f"SKU{i}", i.to_bytes(2, "big") * 8, 1) for i in range(1200)]
    await store.save_product_states(a, states)
    await store.save_product_states(b, [ProductState(f"{b}:0", "X", b"\x01" * 16, 9)])
    ids = [s.product_id for s in states] + [f"{a}:missing", f"{b}:0"]
    found = await store.product_states(a, ids)
    assert len(found) == 1200 and found[f"{a}:7"] == states[7]  # more ids than one IN (...) chunk
    assert f"{b}:0" not in found  # another supplier's product is invisible
    assert await store.product_states(a, []) == {}
    await store.save_product_states(
        a,
        [
            ProductState(f"{a}:7", "SKU7", None, 2, removed=True),
            ProductState(f"{a}:8", "SKU8b", b"\xff" * 16, 2),
        ],
    )
    again = await store.product_states(a, [f"{a}:7", f"{a}:8"])
    assert again[f"{a}:7"] == ProductState(f"{a}:7", "SKU7", None, 2, True)
    assert again[f"{a}:8"].sku == "SKU8b" and again[f"{a}:8"].revision == 2
    live = await store.live_products(a)
    assert len(live) == 1199 and f"{a}:7" not in {s.product_id for s in live}


async def test_feed_reports(store: IngestStore) -> None:
    sid = uid("sup")
    report = FeedReport(
        feed_id=uuid.uuid4().hex,
        supplier_id=sid,
        profile="canonical",
        mode="delta",
        format="csv",
        created_at=datetime.now(UTC),
    )
    await store.save_feed(report)
    assert (await store.get_feed(sid, report.feed_id)).status is FeedStatus.PROCESSING  # type: ignore[union-attr]
    report.status = FeedStatus.COMPLETED
    report.accepted = 3
    for i in range(1000):
        report.reject(LineError(i + 2, "price: missing " + "x" * 100))
    await store.save_feed(report)
    stored = await store.get_feed(sid, report.feed_id)
    assert stored == report
    assert await store.get_feed(uid("other"), report.feed_id) is None
    assert await store.get_feed(sid, uuid.uuid4().hex) is None
    await store.ping()


async def test_import_lease_serializes_importers(store: IngestStore) -> None:
    sid = uid("lease")
    await store.add_supplier(supplier(sid))
    assert await store.acquire_import_lease(sid, "feed-a", 60)
    assert await store.acquire_import_lease(sid, "feed-a", 60)  # renewal by the owner
    assert not await store.acquire_import_lease(sid, "feed-b", 60)
    await store.release_import_lease(sid, "feed-b")  # not the owner: no effect
    assert not await store.acquire_import_lease(sid, "feed-b", 60)
    await store.release_import_lease(sid, "feed-a")
    assert await store.acquire_import_lease(sid, "feed-b", -1)  # taken, but already expired
    assert await store.acquire_import_lease(sid, "feed-c", 60)  # an expired lease can be taken over
    assert not await store.acquire_import_lease(uid("nobody"), "feed-a", 60)


def processing_report(supplier_id: str, feed_id: str) -> FeedReport:
    return FeedReport(
        feed_id=feed_id,
        supplier_id=supplier_id,
        profile="canonical",
        mode="delta",
        format="csv",
        accepted=7,
        created_at=datetime.now(UTC),
    )


async def test_start_fails_the_imports_a_crash_interrupted_and_frees_their_leases(
    store: IngestStore, store_url: str
) -> None:
    """A restart finds reports left ``processing`` by a process that is gone: ``failed``, lease free at
    once. An import whose holder still runs, or whose lease has not expired elsewhere, is left alone."""
    crashed, running, remote = uid("crashed"), uid("running"), uid("remote")
    here = socket.gethostname()
    holders = {
        crashed: f"{here}/{os.getpid()}/0",  # this pid, another start time: that process is gone
        running: current_holder(),
        remote: "another-host/1/1",  # cannot be checked from here: judged by its expiry
    }
    for sid, holder in holders.items():
        await store.add_supplier(supplier(sid))
        store.holder = holder  # type: ignore[attr-defined]  # what each importer wrote with its lease
        assert await store.acquire_import_lease(sid, f"feed-{sid}", 600)
        await store.save_feed(processing_report(sid, f"feed-{sid}"))
    expired = uid("expired")
    await store.add_supplier(supplier(expired))
    store.holder = "another-host/1/1"  # type: ignore[attr-defined]
    assert await store.acquire_import_lease(expired, f"feed-{expired}", -1)
    await store.save_feed(processing_report(expired, f"feed-{expired}"))

    restarted = INGEST_STORE.open(store_url)
    await restarted.start()
    try:
        for sid in (crashed, expired):
            report = await restarted.get_feed(sid, f"feed-{sid}")
            assert report is not None and report.status is FeedStatus.FAILED and report.accepted == 7
            assert "interrupted" in report.notes[-1] and report.finished_at is not None
            assert await restarted.acquire_import_lease(sid, "next", 60)  # free at once
        for sid in (running, remote):
            report = await restarted.get_feed(sid, f"feed-{sid}")
            assert report is not None and report.status is FeedStatus.PROCESSING
            assert not await restarted.acquire_import_lease(sid, "next", 60)
    finally:
        await restarted.close()


async def test_a_database_of_the_previous_release_gains_storefronts(tmp_path: Path) -> None:
    """An ingest database migrated up to the lease holder (3) takes the storefront table (4) at start,
    keeping its suppliers."""
    path = tmp_path / "old-ingest.db"
    conn = sqlite3.connect(path)
    try:
        applied = apply_migrations(
            conn, dialect="sqlite", component="ingest", migrations=SqliteIngestStore.migrations[:3]
        )
        assert applied == [1, 2, 3]
        conn.execute(
            "INSERT INTO ingest_suppliers (supplier_id, name, key_id, key_hash, created_at)"
            " VALUES ('old', 'Old', 'abcdefabcdef', 'scrypt$x', '2026-01-01T00:00:00+00:00')"
        )
        conn.commit()
    finally:
        conn.close()
    store = INGEST_STORE.open(f"sqlite:///{path}")
    await store.start()
    try:
        assert [m.version for m in SqliteIngestStore.migrations] == [1, 2, 3, 4]
        assert (old := await store.get_supplier("old")) is not None and old.key_hash == "scrypt$x"
        shop = StorefrontRecord(
            storefront_id="shop",
            name="Shop",
            key_id="012345abcdef",
            key_hash="hmac-sha256$x",
            created_at=datetime(2026, 1, 2, tzinfo=UTC),
        )
        await store.add_storefront(shop)
        assert await store.get_storefront("shop") == shop
    finally:
        await store.close()
