"""``emporium feed import`` and ``emporium suppliers add``: operator commands, no HTTP in between."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, cast

import msgspec
import typer
from tqdm import tqdm

from emporium.cli.context import run, settings_from
from emporium.container import ingest_service
from ingest.errors import IngestError
from ingest.model import FeedReport, FeedStatus, Mode
from ingest.parsing import FeedError, FeedFormat
from ingest.profiles import PROFILE_NAMES
from ingest.service import import_path
from kernel.settings import Settings

feed_app = typer.Typer(help="Supplier catalog feeds.", no_args_is_help=True)
suppliers_app = typer.Typer(help="Suppliers and their API keys.", no_args_is_help=True)


def _settings(ctx: typer.Context) -> Settings:
    return settings_from(ctx)


def render_report(report: FeedReport, *, max_errors: int | None = None) -> str:
    """The report as indented JSON; the CLI may show only the first ``max_errors`` errors."""
    data = msgspec.to_builtins(report)
    if max_errors is not None and len(report.errors) > max_errors:
        data["errors"] = data["errors"][:max_errors]
        data["errors_shown"] = max_errors
    return msgspec.json.format(msgspec.json.encode(data), indent=2).decode()


@feed_app.command("import")
def import_feed(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV, NDJSON or JSON array file; .gz is read compressed",
        ),
    ],
    supplier: Annotated[
        str, typer.Option("--supplier", help="Supplier id (create it with `suppliers add`).")
    ],
    profile: Annotated[str, typer.Option(help=f"Mapping profile: {', '.join(PROFILE_NAMES)}.")] = "canonical",
    mode: Annotated[
        str, typer.Option(help="delta, or full to remove products missing from the feed.")
    ] = "delta",
    fmt: Annotated[
        FeedFormat | None, typer.Option("--format", help="Override the format from the name.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    show_errors: Annotated[int, typer.Option(help="Errors to print (all are kept in the report).")] = 20,
) -> None:
    """Import a feed file through the ingest service and print its report (JSON)."""
    settings = _settings(ctx)
    if mode not in ("delta", "full"):
        raise typer.BadParameter("mode must be delta or full", param_hint="--mode")
    bar = tqdm(
        total=path.stat().st_size,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=path.name,
        disable=not progress,
        file=sys.stderr,
        leave=False,
    )

    async def import_file() -> FeedReport:
        async with ingest_service(settings) as service:
            return await import_path(
                service,
                path,
                supplier_id=supplier,
                profile=profile,
                mode=cast(Mode, mode),
                fmt=fmt,
                on_read=bar.update,
            )

    try:
        report = run(import_file())
    except (IngestError, FeedError) as exc:
        typer.echo(f"error: {exc.reason}", err=True)
        raise typer.Exit(2) from None
    finally:
        bar.close()
    typer.echo(render_report(report, max_errors=show_errors))
    if report.status is FeedStatus.FAILED:
        raise typer.Exit(1)


@suppliers_app.command("add")
def add_supplier(
    ctx: typer.Context,
    supplier_id: Annotated[str, typer.Argument(help="Stable id, used in product ids and API paths.")],
    name: Annotated[str | None, typer.Option(help="Display name (defaults to the id).")] = None,
) -> None:
    """Create a supplier and print its API key, alone on the last line (shown once, stored hashed)."""
    settings = _settings(ctx)

    async def add() -> str:
        async with ingest_service(settings) as service:
            _, key = await service.add_supplier(supplier_id, name)
            return key

    try:
        key = run(add())
    except IngestError as exc:
        typer.echo(f"error: {exc.reason}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"supplier {supplier_id!r} created; its API key (send as X-Api-Key; shown only once):")
    typer.echo(key)


@suppliers_app.command("rotate-key")
def rotate_key(
    ctx: typer.Context,
    supplier_id: Annotated[str, typer.Argument(help="Existing supplier id.")],
) -> None:
    """Replace a supplier's API key; prints the new key alone on the last line."""
    settings = _settings(ctx)

    async def rotate() -> str:
        async with ingest_service(settings) as service:
            return await service.rotate_key(supplier_id)

    try:
        key = run(rotate())
    except IngestError as exc:
        typer.echo(f"error: {exc.reason}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"new API key for {supplier_id!r} (the old one no longer works):")
    typer.echo(key)


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root ``emporium`` command."""
    app.add_typer(feed_app, name="feed")
    app.add_typer(suppliers_app, name="suppliers")
