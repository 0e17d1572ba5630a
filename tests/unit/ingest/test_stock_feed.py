"""Stock feeds: rows ``sku, warehouse, quantity`` read by the catalog feeds' reader, checked per line, scoped
to the sending supplier and handed to the stock writer (a fake here) in batches."""

from __future__ import annotations

import gzip
import io
from collections.abc import Sequence
from pathlib import Path

import pytest

from emporium.adapters import INGEST_STORE
from ingest.model import FeedStatus
from ingest.parsing import FeedError, FeedFormat
from ingest.service import IngestService, NotFound
from ingest.stock_feed import StockFeedService
from kernel.contracts.stock import RowRefusal, WarehouseQuantity, WarehouseStockOutcome


class FakeStockWriter:
    """Records what it is handed; refuses the SKUs in ``refuse``; a row equal to the last one is unchanged."""

    def __init__(self) -> None:
        self.batches: list[list[WarehouseQuantity]] = []
        self.current: dict[tuple[str, str], int] = {}
        self.refuse: set[str] = set()
        self.fail = False

    async def set_warehouse_stock(self, rows: Sequence[WarehouseQuantity]) -> WarehouseStockOutcome:
        if self.fail:
            raise ConnectionError("inventory down")
        self.batches.append(list(rows))
        outcome = WarehouseStockOutcome()
        for i, row in enumerate(rows):
            if row.sku in self.refuse:
                outcome.refused.append(RowRefusal(i, f"{row.sku}: below what is sold"))
            elif self.current.get((row.sku, row.warehouse)) == row.quantity:
                outcome.unchanged += 1
            else:
                self.current[row.sku, row.warehouse] = row.quantity
                outcome.changed += 1
        return outcome


@pytest.fixture
async def env(tmp_path: Path):
    store = INGEST_STORE.open(f"sqlite:///{tmp_path / 'ingest.db'}")
    await store.start()
    await IngestService(store, FakeLog(), key_secret=b"stock-feed-test-secret-of-32-bytes").add_supplier(
        "acme"
    )  # type: ignore[arg-type]
    writer = FakeStockWriter()
    yield StockFeedService(store, writer, batch_rows=3), writer, store
    await store.close()


class FakeLog:
    async def publish(self, topic: str, messages: Sequence[object]) -> None:
        return None


def csv(*rows: str) -> io.BytesIO:
    return io.BytesIO(("sku,warehouse,quantity\n" + "".join(r + "\n" for r in rows)).encode())


async def test_rows_are_scoped_checked_per_line_and_written_in_batches(env) -> None:
    service, writer, store = env
    report = await service.import_stock(
        "acme",
        csv(
            "A,w1,4", "A,w2, 6 ", "B,w1,x", " ,w1,1", "C,w1,-1", "A,w1,5", "D,,1", "E,w3,2", "F,w1,1000000001"
        ),
        fmt=FeedFormat.CSV,
    )
    assert (report.accepted, report.changed, report.unchanged, report.rejected) == (3, 3, 0, 6)
    assert report.status is FeedStatus.COMPLETED and report.profile == "stock"
    assert [(e.line, e.reason.split(":")[0]) for e in report.errors] == [
        (4, "quantity"),
        (5, "sku"),
        (6, "quantity"),
        (7, "duplicate row for sku 'A' in warehouse 'w1' (first at line 2)"),
        (8, "warehouse"),
        (10, "quantity"),
    ]
    assert [row for batch in writer.batches for row in batch] == [
        WarehouseQuantity("acme:A", "w1", 4),
        WarehouseQuantity("acme:A", "w2", 6),
        WarehouseQuantity("acme:E", "w3", 2),
    ]
    assert await store.get_feed("acme", report.feed_id) == report


async def test_refusals_of_the_writer_are_rejections_of_their_lines(env) -> None:
    service, writer, _ = env
    writer.refuse = {"acme:B"}
    body = (
        b'[{"sku": "A", "warehouse": "w1", "quantity": 1},\n'
        b' {"sku": "B", "warehouse": "w1", "quantity": 0},\n'
        b' {"sku": "A", "warehouse": "w2", "quantity": 1, "note": "extra fields are ignored"}]'
    )
    report = await service.import_stock("acme", io.BytesIO(gzip.compress(body)), fmt=FeedFormat.JSON)
    assert (report.accepted, report.rejected) == (2, 1)
    assert [(e.line, e.reason) for e in report.errors] == [(2, "acme:B: below what is sold")]
    again = await service.import_stock("acme", csv("A,w1,1", "A,w2,3"), fmt=FeedFormat.CSV)
    assert (again.accepted, again.unchanged, again.changed) == (2, 1, 1)


async def test_whole_feed_errors(env) -> None:
    service, writer, _ = env
    with pytest.raises(FeedError, match="warehouse"):
        await service.import_stock("acme", io.BytesIO(b"sku,qty\nA,1\n"), fmt=FeedFormat.CSV)
    with pytest.raises(NotFound):
        await service.import_stock("nobody", csv("A,w1,1"), fmt=FeedFormat.CSV)
    writer.fail = True
    with pytest.raises(ConnectionError):
        await service.import_stock("acme", csv("A,w1,1"), fmt=FeedFormat.CSV)
    assert writer.batches == []


async def test_a_feed_listed_warehouse_after_warehouse_is_written_once_per_sku(env) -> None:
    """Rows are gathered and written per SKU: a SKU's rows spread over the feed (and over read batches of
    3 rows) are one write of the SKU, not a write per row; refusals still name their own lines."""
    service, writer, _ = env
    writer.refuse = {"acme:B"}
    rows = [f"{sku},{wh},{n}" for wh in ("w1", "w2", "w3") for n, sku in enumerate("ABCD")]
    report = await service.import_stock("acme", csv(*rows), fmt=FeedFormat.CSV)
    assert (report.accepted, report.changed, report.rejected) == (9, 9, 3)
    assert [e.line for e in report.errors] == [3, 7, 11]  # B's rows, each on its own line
    written = [[row.sku for row in batch] for batch in writer.batches]
    assert written == [["acme:A"] * 3, ["acme:B"] * 3, ["acme:C"] * 3, ["acme:D"] * 3], written
    assert writer.current == {
        (f"acme:{sku}", wh): "ABCD".index(sku) for wh in ("w1", "w2", "w3") for sku in "ACD"
    }


async def test_rows_are_gathered_up_to_group_rows(env) -> None:
    _, writer, store = env
    bounded = StockFeedService(store, writer, batch_rows=2, group_rows=4)
    rows = [f"{sku},{wh},1" for wh in ("w1", "w2") for sku in "ABCD"]
    report = await bounded.import_stock("acme", csv(*rows), fmt=FeedFormat.CSV)
    assert report.accepted == 8
    assert [[row.sku[-1] + row.warehouse for row in batch] for batch in writer.batches] == [
        ["Aw1", "Bw1"], ["Cw1", "Dw1"], ["Aw2", "Bw2"], ["Cw2", "Dw2"]
    ]  # fmt: skip


async def test_a_feed_grouped_by_sku_is_written_as_it_is_read(env) -> None:
    _, writer, store = env
    streaming = StockFeedService(store, writer, batch_rows=4)
    rows = [f"{sku},{wh},1" for sku in "ABCD" for wh in ("w1", "w2")]
    assert (await streaming.import_stock("acme", csv(*rows), fmt=FeedFormat.CSV)).accepted == 8
    assert [[row.sku[-1] for row in batch] for batch in writer.batches] == [list("AABB"), list("CCDD")]
