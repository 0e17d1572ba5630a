"""``emporium analytics import-history`` and ``emporium analytics archive`` through the CLI (typer runner)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from analytics.archive import Lake
from emporium.cli.main import app

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
GOOD = [
    "536365,85123A,WHITE HEART,6,2010-12-01T08:26:00,2.55,17850,United Kingdom\n",
    "536365,71053,LANTERN,6,2010-12-01T08:26:00,3.39,17850,United Kingdom\n",
    "536366,22632,HAND WARMER,6,2010-12-01T09:28:00,1.85,,France\n",
]
BAD = [
    "536367,22622,BLOCKS,two,2010-12-01T08:33:59,9.95,13047,United Kingdom\n",  # line 5
    "536368,22623,BLOCKS,2,not a date,9.95,13047,United Kingdom\n",  # line 6
]
CANCELLED = "C536379,D,Discount,-1,2010-12-01T09:41:00,27.5,14527,United Kingdom\n"


def invoke(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), "analytics", *args])
    return result.exit_code, result.stdout, result.stderr


def lake(data_dir: Path) -> Lake:
    return Lake(f"file://{data_dir / 'lake'}")


def test_import_history_writes_sales_and_a_reimport_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "retail.csv"
    source.write_text(HEADER + "".join(GOOD) + CANCELLED)
    code, out, _ = invoke(
        tmp_path / "data", "import-history", str(source), "--profile", "online_retail", "--no-progress"
    )
    assert code == 0, out
    assert "imported 3 sales" in out and "1 cancellation" in out and "rejected: 0" in out
    table = lake(tmp_path / "data").read()
    assert table.num_rows == 3
    assert set(table["source"].to_pylist()) == {"online_retail"}
    files = lake(tmp_path / "data").parquet_files()
    assert {Path(f).parent.name for f in files} == {"hour=08", "hour=09"}

    code, out, _ = invoke(
        tmp_path / "data", "import-history", str(source), "--profile", "online_retail", "--no-progress"
    )
    assert code == 0 and "already imported" in out
    assert lake(tmp_path / "data").parquet_files() == files


def test_malformed_lines_are_rejected_with_line_and_reason_and_the_rest_go_through(tmp_path: Path) -> None:
    source = tmp_path / "retail.csv"
    source.write_text(HEADER + "".join(GOOD) + "".join(BAD))
    code, out, _ = invoke(
        tmp_path / "data",
        "import-history",
        str(source),
        "--profile",
        "online_retail",
        "--no-progress",
        "--json",
    )
    assert code == 1  # some lines were rejected
    report = json.loads(out)
    assert (report["accepted"], report["rejected"]) == (3, 2)
    assert report["errors"] == [
        {"line": 5, "reason": "Quantity 'two' is not a whole number", "file": "retail.csv"},
        {"line": 6, "reason": "InvoiceDate 'not a date' is not a date and time", "file": "retail.csv"},
    ]
    assert lake(tmp_path / "data").read().num_rows == 3


def test_a_file_without_the_columns_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "other.csv"
    source.write_text("name,price\nshoe,3\n")
    code, _, err = invoke(
        tmp_path / "data", "import-history", str(source), "--profile", "online_retail", "--no-progress"
    )
    assert code == 2
    assert "no column InvoiceNo" in err
    assert lake(tmp_path / "data").parquet_files() == []
    code, _, err = invoke(
        tmp_path / "data", "import-history", str(tmp_path / "missing"), "--profile", "instacart"
    )
    assert code == 2 and "is not a directory" in err


def test_the_real_datasets_import(tmp_path: Path, datasets_dir: Path) -> None:
    instacart = datasets_dir / "instacart"
    code, out, _ = invoke(
        tmp_path / "data",
        "import-history",
        str(instacart),
        "--profile",
        "instacart",
        "--no-progress",
        "--json",
    )
    report = json.loads(out)
    assert code == 1  # the sample's order lines name some orders its orders.csv lacks: rejected, counted
    assert report["accepted"] > 25_000 and report["rejected"] < 0.1 * report["accepted"]
    first = Path(lake(tmp_path / "data").parquet_files()[0])
    assert pq.read_schema(first).names[:3] == ["event_id", "event_type", "occurred_at"]


def test_archive_on_an_empty_log_archives_nothing(tmp_path: Path) -> None:
    code, out, _ = invoke(tmp_path / "data", "archive", "--no-progress")
    assert code == 0, out
    assert "archived 0 events" in out
