"""``emporium analytics``: the lake's activity table (``archive``, ``import-history``) and the analysts'
Spark jobs (``run JOB|all``, ``report``).

``run`` archives the log first, snapshots the lake, computes each job's missing version on ``spark_url``
and publishes the results to the event log only once every computed version is durable
(``analytics.jobs.runner``). Bad input (an empty lake, a corrupt Parquet file) is one ``error:`` line,
exit code 1, nothing published.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from analytics.archive import catch_up
from analytics.history import FileError, ImportReport, import_history
from analytics.jobs.lake import Snapshot, snapshot
from analytics.jobs.runner import JOBS, JobRun, LazySpark, compute_job, job_params, publish_job
from analytics.jobs.session import SparkUrlError, check_spark_url, spark_session
from analytics.lake_files import LakeError
from emporium.cli.context import run, settings_from
from emporium.container import Container
from kernel.settings import Settings

analytics_app = typer.Typer(
    help="The analysts' loop: archive activity into the lake, import historical sales, run the Spark jobs "
    "(trending, revenue, recommendations) and report.",
    no_args_is_help=True,
)


PRINTED_ERRORS = 20


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root ``emporium`` command."""
    app.add_typer(analytics_app, name="analytics")


class Profile(StrEnum):
    online_retail = "online_retail"
    instacart = "instacart"


#: Beyond a serving archive's flush age: its poll, the write and the commit.
FLUSH_MARGIN_S = 10.0


async def archive_catch_up(settings: Settings, *, progress: bool = False) -> int:
    """Archive every activity event not yet in the lake; the events archived (``analytics run`` calls
    this first, so its jobs see everything up to now). Events a running ``serve`` holds buffered are
    waited for: it writes them within ``archive_flush_s``."""
    container = Container(settings, client_id="emporium-archive")
    event_log = container.event_log()
    async with container:
        return await catch_up(
            event_log,
            settings.lake_url,
            progress=progress,
            wait_s=settings.archive_flush_s + FLUSH_MARGIN_S,
            notify=lambda message: typer.echo(f"[analytics] {message}", err=True),
        )


@analytics_app.command("archive")
def archive(
    ctx: typer.Context,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Archive the activity topic into the lake up to its end, then exit (exactly once per event).

    `serve` (embedded) and `emporium project` keep archiving continuously; this catches up now.
    """
    settings = settings_from(ctx)
    try:
        events = run(archive_catch_up(settings, progress=progress))
    except LakeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"archived {events} events into {settings.lake_url}")


@analytics_app.command("import-history")
def import_history_command(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The CSV (online_retail) or the folder of CSVs (instacart).")],
    profile: Annotated[Profile, typer.Option(help="How to read the file.")],
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Load historical sales into the lake's activity table (source = the profile).

    Lines that do not parse are rejected (line number and reason); the others go through. Importing the
    same content again writes nothing. Exit code 1 when lines were rejected, 2 when nothing could be read.
    """
    settings = settings_from(ctx)
    try:
        report = import_history(path, profile.value, settings.lake_url, progress=progress)
    except (FileError, LakeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if json_output:
        typer.echo(msgspec.json.encode(report).decode())
    else:
        _print_report(report, settings.lake_url)
    if report.rejected:
        raise typer.Exit(1)


def _print_report(report: ImportReport, lake_url: str) -> None:
    if report.already_imported:
        typer.echo(f"already imported ({report.profile} {report.digest}): nothing written")
        return
    skipped = ", ".join(f"{count} {reason}" for reason, count in sorted(report.skipped.items())) or "none"
    typer.echo(
        f"imported {report.accepted} sales ({report.profile} {report.digest}) into {lake_url}: "
        f"{report.files} files; skipped: {skipped}; rejected: {report.rejected}"
    )
    for error in report.errors[:PRINTED_ERRORS]:
        where = f"{error.file}:" if error.file else "line "
        typer.echo(f"  {where}{error.line}: {error.reason}", err=True)
    if report.rejected > PRINTED_ERRORS:
        more = report.rejected - PRINTED_ERRORS
        typer.echo(f"  ... and {more} more (--json lists the first 100)", err=True)


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
    try:
        archived = run(archive_catch_up(settings, progress=True))
    except LakeError as exc:
        raise _fail(str(exc)) from None
    _say(f"archived {archived} new activity events")
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
        params = job_params(settings.trending_min_count, settings.trending_min_actors, settings.recs_holdout)
        return [compute_job(spark, job, snap, params, _say) for job in jobs]
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
