"""The real catalogs in ../shared/datasets import through their profiles into the embedded stack.

Expected counts are computed here, independently, with the csv module and the rules stated in
ingest/profiles.py, then compared with the feed report and with the events on the log.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest

from emporium.container import ingest_service
from ingest.service import IngestService, import_path
from kernel.contracts.events import CATALOG_TOPIC, ProductUpserted, decode_event
from kernel.settings import Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(env={}, data_dir=str(tmp_path / "data"))


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[IngestService]:
    async with ingest_service(settings) as svc:
        yield svc


def records_with_start_lines(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        last = reader.line_num
        for fields in reader:
            start, last = last + 1, reader.line_num
            yield start, {h: v for h, v in zip(header, fields, strict=True) if h}


def is_amount(text: str) -> bool:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return False
    return value.is_finite() and value >= 0


async def upserts_on_log(service: IngestService, supplier_id: str) -> dict[str, ProductUpserted]:
    consumer = service.event_log.consumer([CATALOG_TOPIC], f"check-{supplier_id}")
    await consumer.start()
    found: dict[str, ProductUpserted] = {}
    try:
        while batch := await consumer.poll(5000, timeout=0.5):
            for record in batch:
                event = decode_event(record.value)
                if (
                    isinstance(event.payload, ProductUpserted)
                    and event.payload.product.supplier_id == supplier_id
                ):
                    found[event.key] = event.payload
    finally:
        await consumer.stop()
    return found


async def test_bigbasket(service: IngestService, datasets_dir: Path) -> None:
    path = datasets_dir / "bigbasket_products.csv"
    expected_ok, expected_bad = 0, []
    for line, row in records_with_start_lines(path):
        good = (
            row["index"].strip()
            and row["product"].strip()
            and is_amount(row["sale_price"])
            and (not row["market_price"].strip() or is_amount(row["market_price"]))
            and (not row["rating"].strip() or 0 <= float(row["rating"]) <= 5)
        )
        if good:
            expected_ok += 1
        else:
            expected_bad.append(line)
    assert expected_ok + len(expected_bad) == 27555

    await service.add_supplier("bigbasket")
    report = await import_path(service, path, supplier_id="bigbasket", profile="bigbasket")
    assert (report.accepted, report.rejected, report.changed) == (expected_ok, len(expected_bad), expected_ok)
    assert [e.line for e in report.errors] == expected_bad
    assert report.status == "completed"

    upserts = await upserts_on_log(service, "bigbasket")
    assert len(upserts) == expected_ok
    first = upserts["bigbasket:1"].product
    assert first.brand == "Sri Sri Ayurveda" and first.price == Decimal("220")
    assert (
        first.category_path == ("Beauty & Hygiene", "Hair Care", "Hair Oil & Serum") and first.rating == 4.1
    )

    again = await import_path(service, path, supplier_id="bigbasket", profile="bigbasket")
    assert (again.accepted, again.unchanged, again.changed) == (expected_ok, expected_ok, 0)
    assert len(await upserts_on_log(service, "bigbasket")) == expected_ok  # nothing new on the log


async def test_myntra(service: IngestService, datasets_dir: Path) -> None:
    path = datasets_dir / "myntra_products.csv"
    rows = list(records_with_start_lines(path))
    good = [
        r
        for _, r in rows
        if r["ProductID"].strip() and r["ProductName"].strip() and is_amount(r["Price (INR)"])
    ]
    await service.add_supplier("myntra")
    report = await import_path(service, path, supplier_id="myntra", profile="myntra")
    assert (report.accepted, report.rejected) == (len(good), len(rows) - len(good))
    upserts = await upserts_on_log(service, "myntra")
    assert len(upserts) == len(good)
    sample = good[0]
    product = upserts[f"myntra:{sample['ProductID']}"].product
    assert product.title == sample["ProductName"] and product.price == Decimal(sample["Price (INR)"])
    assert product.category_path[:2] == ("Fashion", sample["Gender"])
    assert product.description == sample["Description"].strip()


async def test_instacart_without_prices_rejects_every_line_with_the_reason(
    service: IngestService, datasets_dir: Path
) -> None:
    path = datasets_dir / "instacart" / "products.csv"
    rows = list(records_with_start_lines(path))
    assert "price" not in rows[0][1]
    await service.add_supplier("instacart")
    report = await import_path(service, path, supplier_id="instacart", profile="instacart")
    assert (report.accepted, report.rejected) == (0, len(rows))
    assert report.errors_truncated and len(report.errors) == 1000
    assert all(e.reason.startswith("price: missing") for e in report.errors)
    assert report.errors[0].line == rows[0][0]


async def test_instacart_with_a_price_list_joins_aisles_and_departments(
    service: IngestService, datasets_dir: Path, tmp_path: Path
) -> None:
    src = datasets_dir / "instacart"
    feed_dir = tmp_path / "instacart"
    feed_dir.mkdir()
    for name in ("products.csv", "aisles.csv", "departments.csv"):
        shutil.copy(src / name, feed_dir / name)
    rows = [r for _, r in records_with_start_lines(feed_dir / "products.csv")]
    priced = {r["product_id"] for r in rows if int(r["product_id"]) % 2 == 0}
    with (feed_dir / "prices.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["product_id", "price"])
        writer.writerows([pid, f"{int(pid) % 17}.99"] for pid in sorted(priced))
    aisles = {r["aisle_id"]: r["aisle"] for r in csv.DictReader((src / "aisles.csv").open())}
    departments = {
        r["department_id"]: r["department"] for r in csv.DictReader((src / "departments.csv").open())
    }

    await service.add_supplier("instacart")
    report = await import_path(
        service, feed_dir / "products.csv", supplier_id="instacart", profile="instacart"
    )
    assert (report.accepted, report.rejected) == (len(priced), len(rows) - len(priced))
    upserts = await upserts_on_log(service, "instacart")
    assert len(upserts) == len(priced)
    for row in rows[:300]:
        if row["product_id"] not in priced:
            continue
        product = upserts[f"instacart:{row['product_id']}"].product
        expected = tuple(
            n.title() for n in (departments[row["department_id"]], aisles[row["aisle_id"]]) if n != "missing"
        )
        assert product.category_path == expected
        assert product.currency == "USD" and product.price == Decimal(f"{int(row['product_id']) % 17}.99")
