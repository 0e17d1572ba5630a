"""``emporium analytics run``: snapshot the lake, compute each job's missing version, then publish.

Order of a run: (1) snapshot and check the input (nothing starts on a bad lake); (2) for each job whose
version (a hash of the input files and the job's parameters) is not committed yet, compute it in Spark
and commit it atomically; (3) only then publish the events of every committed but unpublished version.
A run killed in (2) leaves no version and no event; killed in (3), the next run publishes again.
The Spark session starts only when something must be computed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from analytics.jobs.lake import Snapshot, read_activity
from analytics.jobs.outputs import JobOutputs
from analytics.jobs.publish import publish_version
from analytics.jobs.recommendations import RecParams, recommendations
from analytics.jobs.revenue import REVENUE_SALT, revenue
from analytics.jobs.trending import TrendingParams, trending
from kernel.eventlog.port import EventLog

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

JOBS = ("trending", "revenue", "recommendations")
#: Sort keys of each output table: written sorted, so a version's files are the same on every run.
SORT_KEYS = {
    "trending": ("kind", "window", "region", "rank"),
    "revenue": ("day", "category", "brand", "region", "currency"),
    "popular": ("region", "rank"),
    "user_recs": ("user_id", "rank"),
    "related": ("product_id", "rank"),
    "quality": ("model",),
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class JobParams:
    trending: TrendingParams = field(default_factory=TrendingParams)
    recommendations: RecParams = field(default_factory=RecParams)

    def salt(self, job: str) -> str:
        if job == "trending":
            return self.trending.salt()
        if job == "recommendations":
            return self.recommendations.salt()
        return REVENUE_SALT


@dataclass
class JobRun:
    job: str
    version: str
    computed: bool = False
    events: int = 0
    already_published: bool = False
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)


def job_params(min_count: int, min_actors: int, holdout: float) -> JobParams:
    """The jobs' parameters from the settings (``trending_min_count``, ``trending_min_actors``,
    ``recs_holdout``); the rest keep their defaults. They are part of each job's version."""
    return JobParams(
        trending=TrendingParams(min_count=min_count, min_actors=min_actors),
        recommendations=RecParams(holdout=holdout),
    )


def version_of(job: str, snap: Snapshot, params: JobParams) -> str:
    return snap.fingerprint(job, params.salt(job))


def _compute(
    job: str, activity: DataFrame, snap: Snapshot, params: JobParams
) -> tuple[dict[str, DataFrame], dict[str, Any]]:
    if job == "trending":
        table, regions = trending(activity, snap.watermark, params.trending)
        return {"trending": table}, {"regions": regions}
    if job == "revenue":
        return {"revenue": revenue(activity)}, {}
    result = recommendations(activity, snap.watermark.timestamp(), params.recommendations)
    return result.tables, result.summary()


def compute_job(
    spark: Callable[[], SparkSession], job: str, snap: Snapshot, params: JobParams, progress: Progress
) -> JobRun:
    """Compute and commit ``job``'s version for ``snap`` (unless committed already)."""
    outputs = JobOutputs(snap.lake, job)
    run = JobRun(job=job, version=version_of(job, snap, params))
    if outputs.exists(run.version):
        progress(f"{job}: version {run.version} already computed for this input")
        run.summary = outputs.manifest(run.version).get("summary", {})
        return run
    started = time.monotonic()
    progress(f"{job}: computing version {run.version} from {snap.rows} rows in {len(snap.files)} files")
    tables, summary = _compute(job, read_activity(spark(), snap), snap, params)
    staging = outputs.staging(run.version)
    for name, frame in tables.items():
        progress(f"{job}: writing {name}")
        # one sorted file per table: no range-sampling job, and the same bytes on every run
        frame.coalesce(1).sortWithinPartitions(*SORT_KEYS[name]).write.parquet(str(staging / name))
    manifest = {
        "job": job,
        "version": run.version,
        "revision": snap.revision,
        "watermark": snap.watermark.isoformat(),
        "input_rows": snap.rows,
        "input_files": len(snap.files),
        "summary": summary,
    }
    outputs.commit(staging, run.version, manifest)
    run.computed, run.summary = True, summary
    run.seconds = time.monotonic() - started
    progress(f"{job}: committed {outputs.path(run.version)} in {run.seconds:.1f}s")
    return run


async def publish_job(log: EventLog, run: JobRun, lake: Any, progress: Progress) -> JobRun:
    outputs = JobOutputs(lake, run.job)
    if outputs.is_published(run.version):
        run.already_published = True
        progress(f"{run.job}: version {run.version} already published; no events sent")
        return run
    run.events = await publish_version(log, run.job, outputs, run.version)
    progress(f"{run.job}: published {run.events} events")
    return run


class LazySpark:
    """The session, started on first use (a run whose versions all exist needs no Spark)."""

    def __init__(self, factory: Callable[[], SparkSession], progress: Progress) -> None:
        self.factory, self.progress = factory, progress
        self.session: SparkSession | None = None

    def __call__(self) -> SparkSession:
        if self.session is None:
            self.progress("starting Spark")
            started = time.monotonic()
            self.session = self.factory()
            self.progress(
                f"Spark ready in {time.monotonic() - started:.1f}s ({self.session.sparkContext.master})"
            )
        return self.session
