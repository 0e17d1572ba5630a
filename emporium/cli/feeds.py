"""``emporium feed import``, ``emporium stock import`` and ``emporium suppliers add``: operator commands, no
HTTP in between."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, cast

import msgspec
import typer
from tqdm import tqdm

from emporium.cli.context import run, settings_from
from emporium.cli.keys import print_issued_key
from emporium.container import Container, ingest_service
from ingest.model import FeedReport, FeedStatus, Mode
from ingest.parsing import FeedError, FeedFormat, FeedLimits, format_from_filename
from ingest.profiles import PROFILE_NAMES
from ingest.service import IngestError, IngestService, import_path
from ingest.stock_feed import StockFeedService
from ingest.validation import DEFAULT_STOCK_WAREHOUSE
from kernel.settings import Settings

feed_app = typer.Typer(help="Supplier catalog feeds.", no_args_is_help=True)
stock_app = typer.Typer(help="Supplier stock feeds (warehouse quantities, no catalog).", no_args_is_help=True)
suppliers_app = typer.Typer(help="Suppliers and their API keys.", no_args_is_help=True)
FeedPath = Annotated[
    Path,
    typer.Argument(
        exists=True,
        dir_okay=False,
        readable=True,
        help="CSV, NDJSON or JSON array file; .gz is read compressed",
    ),
]
Supplier = Annotated[str, typer.Option("--supplier", help="Supplier id (create it with `suppliers add`).")]
Format = Annotated[FeedFormat | None, typer.Option("--format", help="Override the format from the name.")]


def _settings(ctx: typer.Context) -> Settings:
    return settings_from(ctx)


def render_report(report: FeedReport, *, max_errors: int | None = None) -> str:
    """The report as indented JSON; the CLI may show only the first ``max_errors`` errors."""
    data = msgspec.to_builtins(report)
    if max_errors is not None and len(report.errors) > max_errors:
        data["errors"] = data["errors"][:max_errors]
        data["errors_shown"] = max_errors
    return msgspec.json.format(msgspec.json.encode(data), indent=2).decode()


def _progress_bar(path: Path, progress: bool) -> tqdm:
    return tqdm(
        total=path.stat().st_size,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=path.name,
        disable=not progress,
        file=sys.stderr,
        leave=False,
    )


def _print_report(report: FeedReport, show_errors: int) -> None:
    typer.echo(render_report(report, max_errors=show_errors))
    if report.status is FeedStatus.FAILED:
        raise typer.Exit(1)


@feed_app.command("import")
def import_feed(
    ctx: typer.Context,
    path: FeedPath,
    supplier: Supplier,
    profile: Annotated[str, typer.Option(help=f"Mapping profile: {', '.join(PROFILE_NAMES)}.")] = "canonical",
    mode: Annotated[
        str, typer.Option(help="delta, or full to remove products missing from the feed.")
    ] = "delta",
    fmt: Format = None,
    default_stock: Annotated[
        int | None,
        typer.Option(
            min=0,
            help=f"Units in warehouse {DEFAULT_STOCK_WAREHOUSE!r} of each product whose line names no stock "
            "(catalogs without stock columns, e.g. bigbasket or myntra). Without it such products have no "
            "stock, so they are out of stock until a stock feed or an admin gives them some.",
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    show_errors: Annotated[int, typer.Option(help="Errors to print (all are kept in the report).")] = 20,
) -> None:
    """Import a feed file through the ingest service and print its report (JSON)."""
    settings = _settings(ctx)
    if mode not in ("delta", "full"):
        raise typer.BadParameter("mode must be delta or full", param_hint="--mode")
    bar = _progress_bar(path, progress)

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
                default_stock=default_stock,
                # the operator's own file: no size limit, but the line limit of every feed
                limits=FeedLimits(max_line_bytes=settings.feed_max_line_bytes),
            )

    try:
        report = run(import_file())
    except (IngestError, FeedError) as exc:
        typer.echo(f"error: {exc.reason}", err=True)
        raise typer.Exit(2) from None
    finally:
        bar.close()
    _print_report(report, show_errors)


@stock_app.command("import")
def import_stock(
    ctx: typer.Context,
    path: FeedPath,
    supplier: Supplier,
    fmt: Format = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    show_errors: Annotated[int, typer.Option(help="Errors to print (all are kept in the report).")] = 20,
) -> None:
    """Import a stock feed file (rows sku, warehouse, quantity), like POST /v1/suppliers/{id}/stock, and
    print its report (JSON). Each row sets one warehouse's quantity of one of the supplier's SKUs."""
    settings = _settings(ctx)
    bar = _progress_bar(path, progress)

    async def import_file() -> FeedReport:
        container = Container(
            settings, client_id="emporium-stock", inventory_options={"sweep_interval": None}
        )
        service = StockFeedService(container.ingest_store(), container.inventory_engine())
        async with container:
            with path.open("rb") as fh:
                return await service.import_stock(
                    supplier,
                    fh,
                    fmt=fmt or format_from_filename(path.name),
                    on_read=bar.update,
                    # the operator's own file: no size limit, but the line limit of every feed
                    limits=FeedLimits(max_line_bytes=settings.feed_max_line_bytes),
                )

    try:
        report = run(import_file())
    except (IngestError, FeedError) as exc:
        typer.echo(f"error: {exc.reason}", err=True)
        raise typer.Exit(2) from None
    finally:
        bar.close()
    _print_report(report, show_errors)


@suppliers_app.command("add")
def add_supplier(
    ctx: typer.Context,
    supplier_id: Annotated[str, typer.Argument(help="Stable id, used in product ids and API paths.")],
    name: Annotated[str | None, typer.Option(help="Display name (defaults to the id).")] = None,
) -> None:
    """Create a supplier and print its API key, alone on the last line (shown once, stored hashed)."""

    async def add(service: IngestService) -> str:
        return (await service.add_supplier(supplier_id, name))[1]

    print_issued_key(
        _settings(ctx),
        add,
        f"supplier {supplier_id!r} created; its API key (send as X-Api-Key; shown only once):",
    )


@suppliers_app.command("rotate-key")
def rotate_key(
    ctx: typer.Context,
    supplier_id: Annotated[str, typer.Argument(help="Existing supplier id.")],
) -> None:
    """Replace a supplier's API key; prints the new key alone on the last line."""

    async def rotate(service: IngestService) -> str:
        return await service.rotate_key(supplier_id)

    print_issued_key(
        _settings(ctx), rotate, f"new API key for {supplier_id!r} (the old one no longer works):"
    )


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root ``emporium`` command."""
    app.add_typer(feed_app, name="feed")
    app.add_typer(stock_app, name="stock")
    app.add_typer(suppliers_app, name="suppliers")
