"""The operator commands: ``emporium suppliers add``, ``emporium storefronts add`` and ``emporium feed
import`` (typer CliRunner)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from typer.testing import CliRunner

from emporium.cli import app
from ingest.auth import parse_api_key

runner = CliRunner()


def emporium(data_dir: Path, *args: str):
    return runner.invoke(
        app,
        ["--data-dir", str(data_dir), "--log-format", "console", *args],
        env={"EMPORIUM_LOG_LEVEL": "warning"},
    )


def test_suppliers_add_prints_the_key_alone_on_the_last_line(tmp_path: Path) -> None:
    result = emporium(tmp_path, "suppliers", "add", "acme", "--name", "Acme Corp")
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert parse_api_key(last) is not None and last == last.strip()
    again = emporium(tmp_path, "suppliers", "add", "acme")
    assert again.exit_code == 1 and "already exists" in again.output
    rotated = emporium(tmp_path, "suppliers", "rotate-key", "acme")
    assert rotated.exit_code == 0 and rotated.stdout.strip().splitlines()[-1] != last


def test_storefronts_add_prints_the_key_alone_on_the_last_line(tmp_path: Path) -> None:
    result = emporium(tmp_path, "storefronts", "add", "shop", "--name", "The Shop")
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert parse_api_key(last, "sfk") is not None and last == last.strip()
    again = emporium(tmp_path, "storefronts", "add", "shop")
    assert again.exit_code == 1 and "already exists" in again.output
    rotated = emporium(tmp_path, "storefronts", "rotate-key", "shop")
    assert rotated.exit_code == 0 and rotated.stdout.strip().splitlines()[-1] != last
    assert emporium(tmp_path, "storefronts", "rotate-key", "nobody").exit_code == 1


def test_feed_import_prints_the_report(tmp_path: Path) -> None:
    assert emporium(tmp_path, "suppliers", "add", "acme").exit_code == 0
    feed = tmp_path / "feed.csv.gz"
    feed.write_bytes(gzip.compress(b"sku,title,price\nA,Apple,1.5\nB,,2\nC,Cherry,3\n"))
    result = emporium(tmp_path, "feed", "import", str(feed), "--supplier", "acme", "--no-progress")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert (report["accepted"], report["rejected"], report["changed"]) == (2, 1, 2)
    assert report["errors"] == [{"line": 3, "reason": "title: expected `str` of length >= 1"}]

    full = emporium(
        tmp_path, "feed", "import", str(feed), "--supplier", "acme", "--mode", "full", "--no-progress"
    )
    assert json.loads(full.stdout[full.stdout.index("{") :])["unchanged"] == 2

    missing = emporium(tmp_path, "feed", "import", str(feed), "--supplier", "nobody", "--no-progress")
    assert missing.exit_code == 2 and "unknown supplier" in missing.output
    bad = tmp_path / "feed.xml"
    bad.write_text("<x/>")
    unsupported = emporium(tmp_path, "feed", "import", str(bad), "--supplier", "acme", "--no-progress")
    assert unsupported.exit_code == 2 and "cannot tell the format" in unsupported.output
    bad_mode = emporium(tmp_path, "feed", "import", str(feed), "--supplier", "acme", "--mode", "sometimes")
    assert bad_mode.exit_code == 2


def test_stock_import_and_default_stock(tmp_path: Path) -> None:
    """`emporium stock import` sets a supplier's warehouse stock without a catalog; `feed import
    --default-stock N` stocks a catalog that has no stock columns. Both under the supplier-scoped SKU."""
    assert emporium(tmp_path, "suppliers", "add", "acme").exit_code == 0
    stock_feed = tmp_path / "stock.csv"
    stock_feed.write_text("sku,warehouse,quantity\nA,wh-north,3\nA,wh-south,4\nB,wh-north,oops\n")
    result = emporium(tmp_path, "stock", "import", str(stock_feed), "--supplier", "acme", "--no-progress")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert (report["accepted"], report["changed"], report["rejected"], report["profile"]) == (
        2,
        2,
        1,
        "stock",
    )
    assert report["errors"][0]["line"] == 4
    shown = emporium(tmp_path, "inventory", "stock", "acme:A")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["warehouses"] == {"wh-north": 3, "wh-south": 4}

    catalog = tmp_path / "catalog.csv"
    catalog.write_text("sku,title,price\nC,Cherry,3\n")
    imported = emporium(
        tmp_path,
        "feed",
        "import",
        str(catalog),
        "--supplier",
        "acme",
        "--default-stock",
        "5",
        "--no-progress",
    )
    assert imported.exit_code == 0, imported.output
    missing = emporium(tmp_path, "stock", "import", str(stock_feed), "--supplier", "nobody", "--no-progress")
    assert missing.exit_code == 2 and "unknown supplier" in missing.output
