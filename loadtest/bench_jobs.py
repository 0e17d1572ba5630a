"""Each Spark job's wall time against a minimal hand-written pyspark script doing the same work, and DuckDB
on the same Parquet beside them, in one run (A B C, A B C, ...: job, minimal pyspark, DuckDB).

    python -m loadtest.bench_jobs [--events 1000000] [--reps 3] [--warmup 1] [--spark local[*]] [--lake DIR]
                                  [--jobs trending revenue recommendations]

The lake is synthetic (``analytics.synthetic``, 20k shoppers, 5k products, 7 days), generated into a
temporary folder unless ``--lake`` names one that already holds activity. One Spark session serves
both Spark sides, warmed up by one full read first. The job's time includes its snapshot (listing and
checking every file's footer), its versioned write and manifest; the version is deleted before each
repetition so every run computes. Reports medians, the median of per-repetition ratios and the load
average, as the machines are shared.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from analytics.jobs.lake import snapshot
from analytics.jobs.outputs import JobOutputs
from analytics.jobs.runner import JOBS, JobParams, compute_job, version_of
from analytics.jobs.session import spark_session
from analytics.synthetic import SyntheticSpec, write_synthetic_lake


def _timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    mem_kb = int(
        next(
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    )
    return f"{os.cpu_count()} cores, {cpu}, {mem_kb / 1024 / 1024:.1f} GiB RAM, {platform.platform()}"


def _ours(spark: Any, job: str, lake: Path) -> None:
    snap = snapshot(str(lake))
    outputs = JobOutputs(lake, job)
    shutil.rmtree(outputs.path(version_of(job, snap, JobParams())), ignore_errors=True)
    compute_job(lambda: spark, job, snap, JobParams(), lambda _m: None)


def bench(lake: Path, jobs: list[str], reps: int, spark_url: str, warmup: int = 1) -> dict[str, Any]:
    from loadtest import bench_jobs_minimal as minimal

    snap = snapshot(str(lake))
    wm = snap.watermark
    spark = spark_session(spark_url, "bench-jobs")
    scratch = Path(tempfile.mkdtemp(prefix="bench-jobs-out-"))
    load_before = os.getloadavg()
    try:
        warm = _timed(lambda: spark.read.parquet(str(lake / "activity")).count())
        baselines: dict[str, Callable[[Path], Any]] = {
            "trending": lambda out: minimal.trending_min(spark, lake, out, wm),
            "revenue": lambda out: minimal.revenue_min(spark, lake, out),
            "recommendations": lambda out: minimal.recommendations_min(spark, lake, out, wm),
        }
        results: dict[str, Any] = {}
        for job in jobs:
            rows: dict[str, list[float]] = {"job": [], "minimal": [], "duckdb": []}
            for rep in range(warmup):  # each side's first run compiles its code paths: not measured
                print(f"{job} warm-up {rep}", flush=True)
                _ours(spark, job, lake)
                baselines[job](scratch / f"{job}-warm-{rep}")
            for rep in range(reps):
                out = scratch / f"{job}-{rep}"
                rows["job"].append(_timed(functools.partial(_ours, spark, job, lake)))
                rows["minimal"].append(_timed(functools.partial(baselines[job], out)))
                rows["duckdb"].append(
                    _timed(functools.partial(minimal.duckdb_job, job, lake, out / "duck", wm))
                )
                print(
                    f"{job} rep {rep}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in rows.items()), flush=True
                )
            ratios = [a / b for a, b in zip(rows["job"], rows["minimal"], strict=True)]
            results[job] = {
                **{f"{k}_median_s": round(statistics.median(v), 2) for k, v in rows.items()},
                "job_over_minimal_median": round(statistics.median(ratios), 3),
                "runs": rows,
            }
        return {
            "events": snap.rows,
            "files": len(snap.files),
            "spark_url": spark_url,
            "warm_up_read_s": round(warm, 2),
            "warm_up_runs_per_side": warmup,
            "machine": _machine(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "jobs": results,
        }
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs of each side first")
    parser.add_argument("--spark", default="local[*]")
    parser.add_argument("--lake", type=Path)
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=JOBS)
    args = parser.parse_args()
    own = args.lake is None
    lake = args.lake or Path(tempfile.mkdtemp(prefix="bench-jobs-lake-"))
    try:
        if not (lake / "activity").is_dir():
            spec = SyntheticSpec(events=args.events, users=20_000, products=5_000, categories=50, days=7)
            print(f"generating {args.events} synthetic events into {lake}", flush=True)
            write_synthetic_lake(lake, spec)
        print(json.dumps(bench(lake, args.jobs, args.reps, args.spark, args.warmup), indent=2))
    finally:
        if own:
            shutil.rmtree(lake, ignore_errors=True)


if __name__ == "__main__":
    main()
