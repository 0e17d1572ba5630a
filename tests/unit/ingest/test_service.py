"""Import use case against an in-memory fake of the EventLog port (and the embedded SQLite store)."""

from __future__ import annotations

import asyncio
import gzip
import io
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from emporium.adapters import INGEST_STORE
from ingest.model import FeedReport, FeedStatus
from ingest.parsing import FeedError, FeedFormat, FeedLimits, FeedTooLarge
from ingest.service import (
    DEFAULT_STOCK_WAREHOUSE,
    Conflict,
    Forbidden,
    ImportStop,
    ImportStopped,
    IngestService,
    InvalidRequest,
    NotFound,
    Unauthorized,
)
from kernel.contracts.events import ProductRemoved, ProductUpserted, SupplierOnboarded, decode_event
from kernel.eventlog.port import OutgoingMessage

HEADER = "sku,title,price,stock.w1\n"
KEY_SECRET = b"unit-test-key-secret-of-32-bytes"


class FakeEventLog:
    """Only what the service uses: publish (optionally failing after N calls)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, OutgoingMessage]] = []
        self.fail_after: int | None = None
        self.calls = 0

    async def publish(self, topic: str, messages: Sequence[OutgoingMessage]) -> None:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise ConnectionError("broker down")
        self.published.extend((topic, m) for m in messages)

    def events(self):
        return [decode_event(m.value) for _, m in self.published]

    def clear(self) -> None:
        self.published.clear()


@pytest.fixture
async def env(tmp_path: Path):
    store = INGEST_STORE.open(f"sqlite:///{tmp_path / 'ingest.db'}")
    await store.start()
    log = FakeEventLog()
    service = IngestService(store, log, key_secret=KEY_SECRET, batch_lines=3)  # type: ignore[arg-type]
    _, key = await service.add_supplier("acme")
    yield service, log, key
    await store.close()


def csv_feed(*rows: str) -> io.BytesIO:
    return io.BytesIO((HEADER + "".join(r + "\n" for r in rows)).encode())


async def test_supplier_onboarding_and_auth(env) -> None:
    service, log, key = env
    assert isinstance(log.events()[0].payload, SupplierOnboarded)
    await service.authenticate("acme", key)
    _, other_key = await service.add_supplier("globex")
    with pytest.raises(Unauthorized):
        await service.authenticate("acme", None)
    with pytest.raises(Unauthorized):
        await service.authenticate("acme", key[:-2] + "xx")
    with pytest.raises(Forbidden):
        await service.authenticate("acme", other_key)
    with pytest.raises(Conflict):
        await service.add_supplier("acme")
    with pytest.raises(InvalidRequest):
        await service.add_supplier("bad:id")
    new_key = await service.rotate_key("acme")
    await service.authenticate("acme", new_key)
    with pytest.raises(Unauthorized):
        await service.authenticate("acme", key)


async def test_reimport_publishes_nothing_and_changes_bump_revision(env) -> None:
    service, log, _ = env
    log.clear()
    rows = [f"S{i},Item {i},{i}.50,{i}" for i in range(7)]
    report = await service.import_feed("acme", csv_feed(*rows), fmt=FeedFormat.CSV)
    assert (report.accepted, report.changed, report.unchanged, report.rejected) == (7, 7, 0, 0)
    assert report.status is FeedStatus.COMPLETED
    assert {e.revision for e in log.events()} == {1}
    log.clear()
    again = await service.import_feed("acme", csv_feed(*rows), fmt=FeedFormat.CSV)
    assert (again.accepted, again.changed, again.unchanged) == (7, 0, 7) and log.published == []
    rows[3] = "S3,Item 3 renamed,3.50,3"
    third = await service.import_feed("acme", csv_feed(*rows), fmt=FeedFormat.CSV)
    assert (third.changed, third.unchanged) == (1, 6)
    (event,) = log.events()
    assert event.key == "acme:S3" and event.revision == 2 and event.payload.product.title == "Item 3 renamed"
    assert (await service.get_feed("acme", third.feed_id)).changed == 1
    with pytest.raises(NotFound):
        await service.get_feed("globex", third.feed_id)


async def test_bad_lines_are_rejected_with_line_numbers_and_duplicates_too(env) -> None:
    service, log, _ = env
    log.clear()
    feed = csv_feed("A,ok,1,1", "B,,1,1", "C,neg,-1,1", "A,dup,2,1", 'D,"broken"x,1,1', "E,ok,1,x")
    report = await service.import_feed("acme", feed, fmt=FeedFormat.CSV)
    assert report.accepted == 1 and report.rejected == 5
    assert [(e.line, e.reason.split(":")[0]) for e in report.errors] == [
        (3, "title"),
        (4, "price"),
        (5, "duplicate product 'acme"),
        (6, "broken CSV quoting"),
        (7, "stock[...]"),
    ]
    assert [e.key for e in log.events()] == ["acme:A"]


async def test_whole_feed_errors_publish_nothing_and_keep_no_report(env) -> None:
    service, log, _ = env
    log.clear()
    with pytest.raises(FeedError, match="needs column"):
        await service.import_feed("acme", io.BytesIO(b"title,price\nx,1\n"), fmt=FeedFormat.CSV)
    with pytest.raises(FeedError):
        await service.import_feed("acme", io.BytesIO(b""), fmt=FeedFormat.CSV)
    with pytest.raises(NotFound):
        await service.import_feed("nobody", csv_feed("A,a,1,1"), fmt=FeedFormat.CSV)
    assert log.published == []


async def test_full_mode_removes_missing_products_but_not_after_a_truncated_feed(env) -> None:
    service, log, _ = env
    rows = [f"S{i},Item {i},{i},1" for i in range(2000)]
    await service.import_feed("acme", csv_feed(*rows), fmt=FeedFormat.CSV)
    log.clear()
    body = gzip.compress((HEADER + "".join(r + "\n" for r in rows[:1000])).encode())
    truncated = await service.import_feed(
        "acme", io.BytesIO(body[: len(body) // 2]), fmt=FeedFormat.CSV, mode="full"
    )
    assert truncated.status is FeedStatus.PARTIAL and truncated.removed == 0
    assert "not read to its end" in truncated.notes[0] and log.published == []
    empty = await service.import_feed("acme", csv_feed(), fmt=FeedFormat.CSV, mode="full")
    assert empty.removed == 0 and "accepted no product" in empty.notes[0]
    full = await service.import_feed("acme", csv_feed(*rows[:1500]), fmt=FeedFormat.CSV, mode="full")
    assert (full.unchanged, full.removed) == (1500, 500)
    removed = log.events()
    assert all(isinstance(e.payload, ProductRemoved) and e.revision == 2 for e in removed)
    assert {e.key for e in removed} == {f"acme:S{i}" for i in range(1500, 2000)}
    log.clear()
    back = await service.import_feed("acme", csv_feed(*rows), fmt=FeedFormat.CSV, mode="full")
    assert (back.changed, back.removed) == (500, 0)
    assert {e.revision for e in log.events()} == {3}
    assert all(isinstance(e.payload, ProductUpserted) for e in log.events())


async def test_publish_failure_commits_nothing_so_a_retry_republishes(env) -> None:
    service, log, _ = env
    log.clear()
    rows = [f"S{i},Item {i},1,1" for i in range(9)]  # three batches of three
    log.fail_after = log.calls + 2
    with pytest.raises(ConnectionError):
        await service.import_feed("acme", csv_feed(*rows), fmt=FeedFormat.CSV)
    assert len(log.published) == 6
    log.fail_after = None
    log.clear()
    retry = await service.import_feed("acme", csv_feed(*rows), fmt=FeedFormat.CSV)
    # The two committed batches are unchanged; the failed batch is published (again) — nothing lost.
    assert (retry.unchanged, retry.changed) == (6, 3)
    assert sorted(e.key for e in log.events()) == [f"acme:S{i}" for i in range(6, 9)]


async def test_one_import_per_supplier_at_a_time(env) -> None:
    service, _, _ = env
    assert await service.store.acquire_import_lease("acme", "someone-else", 60)
    with pytest.raises(Conflict, match="being imported"):
        await service.import_feed("acme", csv_feed("A,a,1,1"), fmt=FeedFormat.CSV)
    await service.store.release_import_lease("acme", "someone-else")
    report = await service.import_feed("acme", csv_feed("A,a,1,1"), fmt=FeedFormat.CSV)
    assert report.accepted == 1
    # The lease is released after each import, failed or not.
    assert await service.store.acquire_import_lease("acme", "next", 60)


async def test_skus_are_scoped_by_the_supplier_and_default_stock_fills_rows_without_stock(env) -> None:
    service, log, _ = env
    log.clear()
    feed = io.BytesIO(b"sku,title,price,stock.w1\nA,with stock,1,4\nB,without stock,1,\n")
    report = await service.import_feed("acme", feed, fmt=FeedFormat.CSV, default_stock=7)
    assert report.accepted == 2
    products = {e.payload.product.product_id: e.payload.product for e in log.events()}
    assert products["acme:A"].sku == "acme:A" and products["acme:A"].stock == {"w1": 4}
    assert products["acme:B"].sku == "acme:B" and products["acme:B"].stock == {DEFAULT_STOCK_WAREHOUSE: 7}
    with pytest.raises(InvalidRequest, match="default_stock"):
        await service.import_feed("acme", csv_feed("A,a,1,1"), fmt=FeedFormat.CSV, default_stock=-1)
    log.clear()
    removed = await service.import_feed("acme", csv_feed("A,with stock,1,4"), fmt=FeedFormat.CSV, mode="full")
    assert removed.removed == 1
    (gone,) = log.events()
    assert isinstance(gone.payload, ProductRemoved) and gone.payload.sku == "acme:B"


class SlowEventLog(FakeEventLog):
    """Publishing takes ``delay`` seconds, and calls ``during`` (if set) on the ``at``-th publish."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.during: Callable[[], object] | None = None
        self.at = 1

    async def publish(self, topic: str, messages: Sequence[OutgoingMessage]) -> None:
        await super().publish(topic, messages)
        if self.calls == self.at and self.during is not None:
            result = self.during()
            if asyncio.iscoroutine(result):
                await result
        await asyncio.sleep(self.delay)


@pytest.fixture
async def slow_env(tmp_path: Path):
    store = INGEST_STORE.open(f"sqlite:///{tmp_path / 'ingest.db'}")
    await store.start()
    log = SlowEventLog(0.0)
    reports: list[FeedReport] = []
    service = IngestService(
        store, log, key_secret=KEY_SECRET, batch_lines=3, lease_s=0.4, on_report=reports.append
    )  # type: ignore[arg-type]
    await service.add_supplier("acme")
    yield service, log, reports
    await store.close()


async def test_the_lease_is_held_for_as_long_as_the_import_runs(slow_env) -> None:
    """One batch slower than the lease: another import still cannot take over (it did, before)."""
    service, log, _ = slow_env
    log.delay, log.at = 1.2, 2  # the first product batch takes three lease lengths
    seen: list[bool] = []

    async def someone_else() -> None:
        await asyncio.sleep(0.8)
        seen.append(await service.store.acquire_import_lease("acme", "someone-else", 60))

    rows = [f"S{i},Item {i},1,1" for i in range(6)]
    report, _ = await asyncio.gather(
        service.import_feed("acme", csv_feed(*rows), fmt=FeedFormat.CSV), someone_else()
    )
    assert seen == [False] and report.status is FeedStatus.COMPLETED and report.accepted == 6
    assert await service.store.acquire_import_lease("acme", "someone-else", 60)  # released at the end


async def test_a_stopped_import_ends_failed_with_what_it_published(slow_env) -> None:
    service, log, reports = slow_env
    stop = ImportStop()
    log.during, log.at = lambda: stop.stop("the client disconnected"), 2
    rows = [f"S{i},Item {i},1,1" for i in range(30)]
    with pytest.raises(ImportStopped, match="client disconnected"):
        await service.import_feed("acme", csv_feed(*rows), fmt=FeedFormat.CSV, stop=stop)
    report = reports[-1]
    assert report.status is FeedStatus.FAILED and "client disconnected" in report.notes[-1]
    assert 0 < report.changed < 30
    upserts = [e for e in log.events() if isinstance(e.payload, ProductUpserted)]
    assert len(upserts) == report.changed  # nothing published beyond what the report says
    assert (await service.store.get_feed("acme", report.feed_id)).status is FeedStatus.FAILED
    assert await service.store.acquire_import_lease("acme", "next", 60)


async def test_a_body_too_large_once_decompressed_fails_with_its_report(slow_env) -> None:
    store = slow_env[0].store
    reports: list[FeedReport] = []
    service = IngestService(
        store, FakeEventLog(), key_secret=KEY_SECRET, batch_lines=2000, on_report=reports.append
    )  # type: ignore[arg-type]
    rows = "".join(f"S{i},Item {i},1,1\n" for i in range(100_000))
    body = io.BytesIO(gzip.compress((HEADER + rows).encode()))
    with pytest.raises(FeedTooLarge, match="once decompressed"):
        await service.import_feed("acme", body, fmt=FeedFormat.CSV, limits=FeedLimits(max_bytes=600_000))
    report = reports[-1]
    assert report.status is FeedStatus.FAILED and "larger than the limit" in report.notes[-1]
    assert 0 < report.accepted < 100_000
    assert await store.acquire_import_lease("acme", "next", 60)
