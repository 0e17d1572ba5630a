"""``emporium analytics``: the lake's activity table (``archive``, ``import-history``)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from analytics.archive import LakeError, catch_up
from analytics.history import FileError, ImportReport, import_history
from emporium.cli.context import run, settings_from
from emporium.container import Container
from kernel.settings import Settings

analytics_app = typer.Typer(
    help="The analytics lake: archive activity, import historical sales (then Spark jobs).",
    no_args_is_help=True,
)


PRINTED_ERRORS = 20


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root ``emporium`` command."""
    app.add_typer(analytics_app, name="analytics")


class Profile(StrEnum):
    online_retail = "online_retail"
    instacart = "instacart"


async def archive_catch_up(settings: Settings, *, progress: bool = False) -> int:
    """Archive every activity event not yet in the lake; the events archived (``analytics run`` calls
    this first, so its jobs see everything up to now)."""
    container = Container(settings, client_id="emporium-archive")
    event_log = container.event_log()
    async with container:
        return await catch_up(event_log, settings.lake_url, progress=progress)


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
