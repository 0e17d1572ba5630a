"""``emporium project`` (run the projectors until Ctrl-C) and ``emporium rebuild search``."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import structlog
import typer

from analytics.archive.module import ArchiveTask
from commerce.prices import prices_projector
from emporium.cli.context import run, settings_from
from emporium.container import Container
from emporium.probe_server import ProbeServer
from inventory.module import FeedTask
from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from kernel.settings import Settings
from read_models.homepage.projection import homepage_projector
from read_models.orders.projector import orders_projector
from read_models.recommendations_projector import recommendations_projector
from read_models.trending_projector import trending_projector
from search.projectors import live_projectors
from search.rebuild import RebuildReport, rebuild_search

log = structlog.get_logger("emporium.project")

rebuild_app = typer.Typer(
    help="Rebuild a read model from the event log, with no downtime.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root ``emporium`` command."""
    app.command("project")(project)
    app.add_typer(rebuild_app, name="rebuild")


def project(
    ctx: typer.Context,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve /metrics (projected events, lag, event age), /healthz and /readyz on this port."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Events per batch.")] = 5000,
) -> None:
    """Run the read-model projectors (search index, out-of-stock set, recommendations, trending, orders,
    homepage), the activity archive (analytics lake), inventory's feed consumer (catalog feed stock ->
    on-hand) and commerce's price list until Ctrl-C.

    For cluster deployments (Kafka, Elasticsearch, Redis); the embedded `serve` runs them in-process.
    Start several for more throughput: the consumer group spreads the partitions over them.
    """
    run(_project(settings_from(ctx), metrics_port=metrics_port, batch_size=batch_size))


async def _project(settings: Settings, *, metrics_port: int | None, batch_size: int) -> None:
    container = Container(settings, client_id="emporium-projector")
    event_log, stock = container.event_log(), container.out_of_stock_set()
    if stock.volatile:
        log.warning(
            "the out-of-stock set is in-process (cache_url memory://): only this process sees it; "
            "serving processes keep their own. Set EMPORIUM_CACHE_URL=redis://... for a cluster."
        )
    trending = container.trending_store()
    metrics = ProjectorMetrics.of(container.metrics)
    tasks: list[ProjectorTask | ArchiveTask | FeedTask] = [
        FeedTask(container.inventory_engine(), event_log),  # feed stock -> on-hand (not in the workers)
        # commerce's price list (a change bumps the cart cache's price generation)
        prices_projector(
            event_log, container.commerce_store(), metrics=metrics, carts=container.cart_cache()
        ),
        *live_projectors(
            event_log, index=container.search_index(), stock=stock, metrics=metrics, batch_size=batch_size
        ),
        recommendations_projector(event_log, container.recommendations_store(), metrics=metrics),
        orders_projector(event_log, container.orders_store(), metrics=metrics),
        ArchiveTask(event_log, settings.lake_url, max_age_s=settings.archive_flush_s),  # -> analytics lake
    ]
    if trending.volatile:
        log.warning(
            "the trending store is in-process (cache_url memory://): each serving process follows the "
            "trending topic itself, so this command does not project it. Set EMPORIUM_CACHE_URL=redis://..."
        )
    else:
        tasks.append(trending_projector(event_log, trending, metrics=metrics))
    homepage = container.homepage_cache()
    if not homepage.volatile:  # an in-process homepage cache is kept by each serving process itself
        tasks.append(homepage_projector(event_log, homepage, metrics=metrics))
    started = asyncio.Event()
    probes = ProbeServer(metrics_port, container.metrics, started.is_set) if metrics_port else None
    if probes is not None:
        probes.start()  # alive (not ready) while the adapters connect
    try:
        async with container:
            stopping = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stopping.set)
            for task in tasks:
                await container.start(task)
            heartbeat = asyncio.create_task(probes.heartbeat()) if probes else None
            started.set()
            log.info("projectors running; Ctrl-C to stop", groups=[t.group for t in tasks])
            await stopping.wait()
            log.info("stopping projectors")
            if heartbeat is not None:
                heartbeat.cancel()
    finally:
        if probes is not None:
            probes.stop()


@rebuild_app.command("search")
def rebuild_search_command(
    ctx: typer.Context,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Events per batch.")] = 5000,
) -> None:
    """Replay catalog + inventory events into a fresh index, then swap the alias atomically.

    Searches keep answering from the current index until the swap; the live projector keeps running.
    """
    report = run(_rebuild(settings_from(ctx), progress=progress, batch_size=batch_size))
    typer.echo(
        f"rebuilt search index: {report.documents} documents from {report.events} events "
        f"in {report.seconds:.1f}s (group {report.group})"
    )


async def _rebuild(settings: Settings, *, progress: bool, batch_size: int) -> RebuildReport:
    container = Container(settings, client_id="emporium-rebuild")
    runtime, index, stock = container.runtime, container.search_index(), container.out_of_stock_set()
    async with container:
        return await rebuild_search(
            runtime, index=index, stock=stock, progress=progress, batch_size=batch_size
        )
