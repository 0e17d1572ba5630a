"""Shared by the Spark job tests: tiny synthetic lakes and a one-call run of the jobs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from analytics.jobs.lake import snapshot
from analytics.jobs.runner import JOBS, JobParams, JobRun, compute_job
from analytics.synthetic import SyntheticSpec, generate, write_lake

#: Planted signal: 250 shoppers, each sticking to one of 10 categories 90% of the time.
PLANTED = SyntheticSpec(events=15_000, users=250, products=200, categories=10, days=4, affinity=0.9)


def planted_lake(root: Path) -> Path:
    lake = root / "lake"
    write_lake(generate(PLANTED), lake)
    return lake


def compute_all(spark: Callable[[], object], lake: Path, params: JobParams | None = None) -> list[JobRun]:
    snap = snapshot(str(lake))
    return [compute_job(spark, job, snap, params or JobParams(), lambda _m: None) for job in JOBS]  # type: ignore[arg-type]
