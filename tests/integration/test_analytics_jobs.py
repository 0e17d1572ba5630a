"""The Spark jobs on ``local[2]`` over tiny synthetic lakes (one session for the module): trending on
hand-made events, revenue against a plain sum, the planted-signal test (ALS at least 2x popularity's
precision@10), and a whole run: committed outputs, events published once, re-runs and recovery."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from analytics_support import PLANTED, compute_all, planted_lake
from pyspark.sql import SparkSession

from analytics.jobs.lake import read_activity, snapshot
from analytics.jobs.outputs import PUBLISHED, JobOutputs
from analytics.jobs.runner import JOBS, JobRun, publish_job
from analytics.jobs.session import spark_session
from analytics.jobs.trending import TrendingParams, trending
from analytics.report import render_report
from analytics.schema import ACTIVITY_SCHEMA
from analytics.synthetic import generate, write_lake
from emporium.container import Container
from kernel.contracts.events import RECOMMENDATIONS_TOPIC, TRENDING_TOPIC, Envelope, decode_event
from kernel.settings import load_settings

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = spark_session("local[2]", "emporium-tests")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory, spark: SparkSession) -> tuple[Path, list[JobRun]]:
    """The planted lake in a data dir, every job computed once (nothing published yet)."""
    data_dir = tmp_path_factory.mktemp("data")
    lake = planted_lake(data_dir)
    return data_dir, compute_all(lambda: spark, lake)


END = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _row(n: int, kind: str, minutes_ago: float, actor: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"e{n}",
        "event_type": kind,
        "occurred_at": END - timedelta(minutes=minutes_ago),
        "user_id": actor,
        "region": "BLR",
        "source": "test",
        **fields,
    }


def _handmade() -> pa.Table:
    rows: list[dict[str, Any]] = []
    add = lambda kind, ago, actor, **f: rows.append(_row(len(rows), kind, ago, actor, **f))  # noqa: E731
    for i in range(8):
        add("view", 30, f"v{i}", product_id="viewed")  # 8 views: 8
    for i in range(5):
        add(
            "purchase", 30, f"b{i}", product_id="bought", quantity=1, unit_price=Decimal("10.00")
        )  # 5 x 4 = 20
    for i in range(3):
        add("view", 10, f"f{i}", product_id="few")  # under the minimum support
    for _ in range(10):
        add("view", 10, "bot", product_id="botted")  # one shopper only
    for i in range(6):
        add("view", 20 * 60, f"y{i}", product_id="yesterday", region="DEL")  # in the day, not the hour
    for i in range(6):
        add("search", 5, f"s{i}", query=" Shoes " if i % 2 else "shoes")
    rows.append(_row(len(rows), "view", 0, "last", product_id="few"))  # the newest event: the watermark
    return pa.Table.from_pylist(rows, schema=ACTIVITY_SCHEMA)


def test_trending_weights_decays_and_needs_support(tmp_path: Path, spark: SparkSession) -> None:
    write_lake(_handmade(), tmp_path)
    snap = snapshot(str(tmp_path))
    assert snap.watermark == END
    table, regions = trending(read_activity(spark, snap), snap.watermark, TrendingParams())
    assert regions == ["BLR", "DEL"]
    result = table.collect()
    lists: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for row in sorted(result, key=lambda r: r["rank"]):
        lists[(row["kind"], row["window"], row["region"])].append(row["key"])
    assert lists[("products", "hour", "")] == ["bought", "viewed"]  # a purchase outweighs a view
    assert lists[("products", "hour", "BLR")] == ["bought", "viewed"]
    assert lists[("products", "day", "")] == ["bought", "viewed", "yesterday"]
    assert lists[("products", "day", "DEL")] == ["yesterday"]
    assert ("products", "hour", "DEL") not in lists
    assert lists[("queries", "hour", "")] == ["shoes"]  # trimmed and lower-cased into one query
    assert {row["window_end"].replace(tzinfo=UTC) for row in result} == {END}
    counts = {(r["key"], r["window"], r["region"]): r["count"] for r in result}
    assert counts[("viewed", "hour", "")] == 8 and counts[("yesterday", "day", "")] == 6


def test_revenue_matches_a_plain_sum(planted: tuple[Path, list[JobRun]]) -> None:
    data_dir, runs = planted
    outputs = JobOutputs(data_dir / "lake", "revenue")
    table = outputs.read(runs[1].version, "revenue").to_pylist()
    expected: Counter[tuple[Any, str]] = Counter()
    for row in generate(PLANTED).to_pylist():
        if row["event_type"] == "purchase":
            expected[(row["occurred_at"].date(), row["category"])] += row["unit_price"] * row["quantity"]
    got: Counter[tuple[Any, str]] = Counter()
    for row in table:
        got[(row["day"], row["category"])] += row["revenue"]
    assert got == expected
    assert {row["currency"] for row in table} == {"INR"}


def test_planted_signal_als_beats_popularity_twice_over(planted: tuple[Path, list[JobRun]]) -> None:
    data_dir, runs = planted
    quality = {q["model"]: q for q in runs[2].summary["quality"]}
    als, popular = quality["als"], quality["popularity"]
    assert als["users"] >= 100
    assert als["precision"] >= 2 * popular["precision"], quality
    assert runs[2].summary["published"]["user_recs"] is True
    outputs = JobOutputs(data_dir / "lake", "recommendations")
    recs = outputs.read(runs[2].version, "user_recs").to_pylist()
    per_user = Counter(r["user_id"] for r in recs)
    assert max(per_user.values()) <= 50 and len(per_user) >= 200
    # the published lists skip what the shopper already took
    seen = {(r["user_id"], r["product_id"]) for r in generate(PLANTED).to_pylist() if r["product_id"]}
    assert not [r for r in recs if (r["user_id"], r["product_id"]) in seen]


def _log_events(data_dir: Path) -> list[Envelope]:
    async def read() -> list[Envelope]:
        container = Container(load_settings(env={}, data_dir=str(data_dir)), client_id="test")
        log = container.event_log()
        events: list[Envelope] = []
        async with container:
            consumer = log.consumer(
                [RECOMMENDATIONS_TOPIC, TRENDING_TOPIC], group=f"t-{len(events)}-{id(log)}"
            )
            await consumer.start()
            try:
                while batch := await consumer.poll(5000, timeout=0.5):
                    events.extend(decode_event(r.value) for r in batch)
            finally:
                await consumer.stop()
        return events

    return asyncio.run(read())


def _publish(data_dir: Path, runs: list[JobRun]) -> list[JobRun]:
    async def go() -> list[JobRun]:
        container = Container(load_settings(env={}, data_dir=str(data_dir)), client_id="analytics")
        log = container.event_log()
        async with container:
            return [await publish_job(log, run, data_dir / "lake", lambda _m: None) for run in runs]

    return asyncio.run(go())


def test_a_run_publishes_once_and_a_rerun_publishes_nothing(
    planted: tuple[Path, list[JobRun]], spark: SparkSession
) -> None:
    data_dir, runs = planted
    assert _log_events(data_dir) == []  # computed and committed, not yet published: nothing on the log
    published = _publish(data_dir, runs)
    events = _log_events(data_dir)
    assert sum(r.events for r in published) == len(events) > 0
    by_type = Counter(e.type for e in events)
    assert by_type["recommendations.computed"] >= 200
    assert by_type["recommendations.popular_computed"] == 5  # four regions and all of them
    assert by_type["trending.computed"] >= 4
    # bought-together is published exactly when it beat popularity on its holdout
    related_won = runs[2].summary["published"]["related"]
    assert ("recommendations.related_computed" in by_type) == related_won
    revision = snapshot(str(data_dir / "lake")).revision
    assert {e.revision for e in events} == {revision}
    keys = {e.key for e in events}
    assert (
        "popular:" in keys and "user:u1" in keys and any(k.startswith("trending:products:day:") for k in keys)
    )

    again = compute_all(lambda: spark, data_dir / "lake")  # same input: nothing computed, nothing sent
    assert [r.version for r in again] == [r.version for r in runs] and not any(r.computed for r in again)
    assert sum(r.events for r in _publish(data_dir, again)) == 0
    assert len(_log_events(data_dir)) == len(events)

    # killed after publishing but before the marker: the next run sends the very same events again
    outputs = JobOutputs(data_dir / "lake", "trending")
    (outputs.path(runs[0].version) / PUBLISHED).unlink()
    _publish(data_dir, compute_all(lambda: spark, data_dir / "lake")[:1])
    after = _log_events(data_dir)
    trending_ids = [e.event_id for e in after if e.type == "trending.computed"]
    assert len(trending_ids) == 2 * len(set(trending_ids))  # same ids: projectors drop the repeats


def test_the_report_has_the_charts(planted: tuple[Path, list[JobRun]]) -> None:
    data_dir, _runs = planted
    html = render_report(data_dir / "lake")
    assert html.count("data:image/png;base64,") >= 4
    assert "precision@10" in html and "als" in html and "bought_together" in html


def test_jobs_cover_every_job(planted: tuple[Path, list[JobRun]]) -> None:
    _data_dir, runs = planted
    assert [r.job for r in runs] == list(JOBS) and all(r.computed for r in runs)
