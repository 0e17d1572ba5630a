"""The job suite on a Spark standalone cluster (master + worker started from the installed pyspark by the
local stack) gives the same outputs as on ``local[2]``: same versions, same tables. ALS scores are float
sums whose order may differ between the two: they agree to 1e-4, and the ranked lists are identical."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from analytics_support import compute_all

from analytics.jobs.outputs import JobOutputs
from analytics.jobs.runner import JOBS
from analytics.jobs.session import spark_session
from analytics.synthetic import SyntheticSpec, generate, write_lake

# Two full runs of every job; on a shared 2-core machine under load that takes minutes.
pytestmark = [pytest.mark.spark, pytest.mark.timeout(1800)]

SPEC = SyntheticSpec(events=4_000, users=100, products=80, categories=5, days=2, affinity=0.9)


def _run(url: str, lake: Path) -> list[str]:
    session = spark_session(url, "emporium-tests")
    try:
        assert session.sparkContext.master == url
        return [run.version for run in compute_all(lambda: session, lake)]
    finally:
        session.stop()


def _rounded(value: object) -> object:
    """``value`` with every float rounded to 9 places (nested dicts and lists too)."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def test_local_and_standalone_cluster_give_the_same_outputs(tmp_path: Path, spark_url: str) -> None:
    local_lake, cluster_lake = tmp_path / "local", tmp_path / "cluster"
    write_lake(generate(SPEC), local_lake)
    shutil.copytree(local_lake / "activity", cluster_lake / "activity")
    versions = _run("local[2]", local_lake)
    assert _run(spark_url, cluster_lake) == versions
    for job, version in zip(JOBS, versions, strict=True):
        here, there = JobOutputs(local_lake, job), JobOutputs(cluster_lake, job)
        assert here.tables(version) == there.tables(version)
        # the model-quality figures in the summary are float means summed in either order
        assert _rounded(here.manifest(version)) == _rounded(there.manifest(version))
        for table in here.tables(version):
            mine, theirs = here.read(version, table).to_pylist(), there.read(version, table).to_pylist()
            if table != "user_recs":
                assert _rounded(mine) == _rounded(theirs), (job, table)
                continue
            assert [(r["user_id"], r["rank"], r["product_id"]) for r in mine] == [
                (r["user_id"], r["rank"], r["product_id"]) for r in theirs
            ]
            assert max(abs(a["score"] - b["score"]) for a, b in zip(mine, theirs, strict=True)) <= 1e-4
