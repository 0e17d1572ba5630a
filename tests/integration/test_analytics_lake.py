"""The jobs' input and output plumbing without Spark: lake snapshots, bad input, versioned outputs,
and ``emporium analytics run`` refusing bad input before Spark starts, with nothing published."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from analytics.jobs.lake import LakeError, snapshot
from analytics.jobs.outputs import JobOutputs
from analytics.synthetic import SyntheticSpec, generate, write_lake
from emporium.cli.main import app
from emporium.container import Container
from kernel.contracts.events import RECOMMENDATIONS_TOPIC, TRENDING_TOPIC
from kernel.settings import load_settings

SMALL = SyntheticSpec(events=600, users=30, products=40, categories=4, days=1)


def lake_with(tmp_path: Path, spec: SyntheticSpec = SMALL) -> Path:
    lake = tmp_path / "lake"
    write_lake(generate(spec), lake)
    return lake


def test_snapshot_lists_files_and_derives_a_stable_version(tmp_path: Path) -> None:
    lake = lake_with(tmp_path)
    first, again = snapshot(f"file://{lake}"), snapshot(str(lake))
    assert first.rows == SMALL.events and len(first.files) == 24
    assert first.fingerprint("trending") == again.fingerprint("trending")
    assert first.fingerprint("trending") != first.fingerprint("revenue")
    table = generate(SMALL)
    assert first.watermark == table["occurred_at"].to_pylist()[-1]
    (lake / "activity" / "date=2026-11-29" / "hour=00" / ".archive-tmp.parquet").write_bytes(b"partial")
    (lake / "activity" / "_staging").mkdir()
    assert snapshot(str(lake)).files == first.files  # hidden files are not input


def test_revision_grows_with_newer_input(tmp_path: Path) -> None:
    lake = lake_with(tmp_path)
    before = snapshot(str(lake))
    later = SyntheticSpec(
        events=50, users=5, products=10, categories=2, days=1, seed=9, end=SMALL.end.replace(day=30, hour=5)
    )
    write_lake(generate(later), lake, name="later")
    assert snapshot(str(lake)).revision > before.revision


def test_an_empty_lake_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LakeError, match="no activity yet"):
        snapshot(str(tmp_path / "lake"))


def test_a_corrupt_parquet_file_is_named(tmp_path: Path) -> None:
    lake = lake_with(tmp_path)
    bad = lake / "activity" / "date=2026-11-29" / "hour=03" / "broken.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(LakeError, match=r"corrupt Parquet file .*broken\.parquet"):
        snapshot(str(lake))


def test_a_foreign_parquet_file_is_refused(tmp_path: Path) -> None:
    lake = lake_with(tmp_path)
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1]}), lake / "activity" / "date=2026-11-29" / "hour=03" / "other.parquet")
    with pytest.raises(LakeError, match="not an activity file"):
        snapshot(str(lake))


def test_outputs_commit_atomically_and_point_latest(tmp_path: Path) -> None:
    outputs = JobOutputs(tmp_path, "trending")
    leftover = outputs.staging("v1")  # a run killed mid-write
    (leftover / "trending").mkdir()
    assert not outputs.exists("v1") and outputs.latest() is None
    staging = outputs.staging("v1")
    assert not leftover.exists()  # cleaned by the next run
    import pyarrow.parquet as pq

    (staging / "trending").mkdir()
    pq.write_table(pa.table({"rank": [1]}), staging / "trending" / "part-0.parquet")
    outputs.commit(staging, "v1", {"revision": 5, "watermark": "2026-11-30T00:00:00+00:00"})
    assert outputs.exists("v1") and outputs.latest() == "v1" and not outputs.is_published("v1")
    assert outputs.tables("v1") == ["trending"] and outputs.read("v1", "trending").num_rows == 1
    assert json.loads((outputs.path("v1") / "_MANIFEST.json").read_text())["revision"] == 5
    outputs.mark_published("v1")
    assert outputs.is_published("v1")
    assert [p.name for p in outputs.root.iterdir() if p.name.startswith(".")] == []


def _events_on_log(data_dir: Path) -> int:
    async def count() -> int:
        container = Container(load_settings(env={}, data_dir=str(data_dir)), client_id="test")
        log = container.event_log()
        async with container:
            total = 0
            for topic in (RECOMMENDATIONS_TOPIC, TRENDING_TOPIC):
                total += await log.lag(topic, "nobody")
            return total

    return asyncio.run(count())


@pytest.mark.parametrize("case", ["empty", "corrupt"])
def test_run_refuses_bad_input_before_spark_and_publishes_nothing(tmp_path: Path, case: str) -> None:
    data_dir = tmp_path / "data"
    if case == "corrupt":
        lake = lake_with(data_dir)
        (lake / "activity" / "date=2026-11-29" / "hour=01" / "synthetic.parquet").write_bytes(b"garbage")
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), "analytics", "run", "all"])
    assert result.exit_code == 1, result.output
    expected = "no activity yet" if case == "empty" else "corrupt Parquet file"
    assert expected in result.output
    assert "starting Spark" not in result.output
    assert not (data_dir / "lake" / "outputs").exists()
    assert _events_on_log(data_dir) == 0


def test_report_without_outputs_says_what_to_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["--data-dir", str(tmp_path), "analytics", "report", "-o", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 1
    assert "analytics run all" in result.output
