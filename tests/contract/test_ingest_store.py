"""One contract suite for the ingest store port, run against SQLite and MySQL/MariaDB (never skipped)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pymysql
import pytest

from emporium.adapters import INGEST_STORE
from ingest.model import FeedReport, FeedStatus, ProductState, StorefrontRecord, SupplierRecord
from ingest.parsing import LineError
from ingest.store import IngestStore, StorefrontExists, SupplierExists
from kernel.database import MysqlTarget, parse_database_url


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
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IngestStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ingest.db'}"
    else:
        url = request.getfixturevalue("ingest_mysql_url")
    s = INGEST_STORE.open(url)
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
