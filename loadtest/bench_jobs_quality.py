"""Model quality on the two real datasets: ALS, bought-together and popularity side by side, on the
recommendations job's time-based holdout (precision@10, recall@10, MAP@10).

    python -m loadtest.bench_jobs_quality [--datasets ../shared/datasets] [--spark local[*]]
                                          [--only online_retail|instacart] [--lake URL]

Each dataset goes into a fresh lake through the real import path (``analytics.history.import_history``,
what ``emporium analytics import-history PATH --profile NAME`` runs), so the rows the job sees are the
ones an analyst's lake holds. ``--lake`` judges a lake imported beforehand instead (one dataset).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from analytics.history import import_history
from analytics.jobs.lake import snapshot
from analytics.jobs.runner import JobParams, compute_job
from analytics.jobs.session import spark_session

DEFAULT_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SOURCES = {
    "online_retail": Path("online_retail") / "online_retail_sample.csv",
    "instacart": Path("instacart"),
}


def imported_lake(datasets: Path, profile: str) -> tuple[str, dict[str, Any]]:
    """A fresh lake holding ``profile``'s dataset, imported as ``analytics import-history`` does."""
    lake = f"file://{tempfile.mkdtemp(prefix=f'quality-{profile}-')}"
    report = import_history(datasets / SOURCES[profile], profile, lake)
    facts: dict[str, Any] = {"accepted": report.accepted, "rejected": report.rejected, "files": report.files}
    facts["skipped"] = dict(report.skipped)
    return lake, facts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument("--spark", default="local[*]")
    parser.add_argument("--only", choices=sorted(SOURCES), action="append")
    parser.add_argument("--lake", help="a lake imported beforehand (judged instead of importing)")
    args = parser.parse_args()
    names = args.only or list(SOURCES)
    if args.lake and len(names) != 1:
        parser.error("--lake takes one dataset: name it with --only")
    spark = spark_session(args.spark, "bench-quality")
    results: dict[str, Any] = {}
    try:
        for name in names:
            lake, facts = (args.lake, {}) if args.lake else imported_lake(args.datasets, name)
            snap = snapshot(lake)
            run = compute_job(
                lambda: spark, "recommendations", snap, JobParams(), lambda m: print(m, flush=True)
            )
            results[name] = {"rows": snap.rows, "files": len(snap.files), "import": facts, **run.summary}
            print(json.dumps({name: results[name]}, indent=2), flush=True)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
