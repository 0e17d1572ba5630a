"""``emporium analytics run JOB|all`` and ``emporium analytics report``: the analysts' Spark jobs.

``run`` snapshots the lake, computes each job's missing version on ``spark_url`` and publishes the
results to the event log only once every computed version is durable (``analytics.jobs.runner``).
Bad input (an empty lake, a corrupt Parquet file) is one ``error:`` line, exit code 1, nothing published.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from analytics.jobs.lake import LakeError, Snapshot, snapshot
from analytics.jobs.runner import JOBS, JobParams, JobRun, LazySpark, compute_job, publish_job
from analytics.jobs.session import SparkUrlError, check_spark_url, spark_session
from emporium.cli.context import run, settings_from
from emporium.container import Container
from kernel.settings import Settings

analytics_app = typer.Typer(
    name="analytics",
    help="The analysts' loop: Spark jobs over the activity lake (trending, revenue, recommendations).",
    no_args_is_help=True,
)


class JobName(StrEnum):
    trending = "trending"
    revenue = "revenue"
    recommendations = "recommendations"
    all = "all"


def _say(message: str) -> None:
    typer.echo(f"[analytics] {message}")


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


@analytics_app.command("run")
def run_jobs(
    ctx: typer.Context,
    job: Annotated[JobName, typer.Argument(help="The job to run, or all of them.")],
) -> None:
    """Compute a job's outputs for the lake's current input and publish them as events.

    Re-running on the same input recomputes nothing and publishes nothing again.
    """
    settings = settings_from(ctx)
    # LEAD HOOK (archive15): archive the log first: run(archive_catch_up(settings, progress=True))
    try:
        check_spark_url(settings.spark_url)
        snap = snapshot(settings.lake_url)
    except (LakeError, SparkUrlError) as exc:
        raise _fail(str(exc)) from None
    _say(
        f"input: {snap.rows} rows in {len(snap.files)} files, newest event {snap.watermark:%Y-%m-%d %H:%M:%S}"
    )
    jobs = JOBS if job is JobName.all else (job.value,)
    runs = _compute(settings, jobs, snap)
    run(_publish(settings, runs, snap))
    for done in runs:
        decision = done.summary.get("decision")
        if decision:
            _say(f"{done.job}: {decision}")
    _say("done")


def _compute(settings: Settings, jobs: tuple[str, ...], snap: Snapshot) -> list[JobRun]:
    spark = LazySpark(lambda: spark_session(settings.spark_url), _say)
    try:
        return [compute_job(spark, job, snap, JobParams(), _say) for job in jobs]
    except LakeError as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:  # Spark's errors (Py4J, AnalysisException) have no common base to name
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(
            f"a Spark job failed, nothing was published: {type(exc).__name__}: {first[:500]}"
        ) from exc
    finally:
        if spark.session is not None:
            spark.session.stop()


async def _publish(settings: Settings, runs: list[JobRun], snap: Snapshot) -> None:
    container = Container(settings, client_id="emporium-analytics")
    event_log = container.event_log()
    async with container:
        for done in runs:
            await publish_job(event_log, done, snap.lake, _say)


@analytics_app.command("report")
def report(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the HTML report.")] = Path(
        "analytics-report.html"
    ),
) -> None:
    """Write an HTML report (trending, revenue over time and by category, model quality) from the
    latest outputs."""
    from analytics.jobs.lake import lake_path
    from analytics.report import ReportError, render_report

    settings = settings_from(ctx)
    try:
        html = render_report(lake_path(settings.lake_url))
    except (ReportError, LakeError) as exc:
        raise _fail(str(exc)) from None
    out.write_text(html)
    _say(f"report written to {out.resolve()}")


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root ``emporium`` command."""
    app.add_typer(analytics_app, name="analytics")
