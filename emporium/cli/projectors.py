"""``emporium project`` (run the projectors until Ctrl-C) and ``emporium rebuild search``."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from emporium.cli.context import settings_from
from kernel.settings import Settings

if TYPE_CHECKING:
    from search.rebuild import RebuildReport

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
        int | None, typer.Option(help="Serve Prometheus metrics (projected events, lag) on this port.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Events per batch.")] = 5000,
) -> None:
    """Run the read-model projectors (search index, out-of-stock set, recommendations) until Ctrl-C.

    For cluster deployments (Kafka, Elasticsearch, Redis); the embedded `serve` runs them in-process.
    Start several for more throughput: the consumer group spreads the partitions over them.
    """
    asyncio.run(_project(settings_from(ctx), metrics_port=metrics_port, batch_size=batch_size))


async def _project(settings: Settings, *, metrics_port: int | None, batch_size: int) -> None:
    import structlog

    from emporium.bootstrap import build_runtime
    from kernel.eventlog.projection import ProjectorMetrics
    from read_models.recommendations import open_recommendations_store
    from read_models.recommendations_projector import recommendations_projector
    from search.module import open_index
    from search.out_of_stock import open_out_of_stock_set
    from search.projectors import live_projectors

    log = structlog.get_logger("emporium.project")
    runtime = build_runtime(settings, client_id="emporium-projector")
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, registry=runtime.metrics)
    stock = open_out_of_stock_set(settings.cache_url)
    if stock.volatile:
        log.warning(
            "the out-of-stock set is in-process (cache_url memory://): only this process sees it; "
            "serving processes keep their own. Set EMPORIUM_CACHE_URL=redis://... for a cluster."
        )
    index = open_index(settings.search_url)
    recommendations = open_recommendations_store(settings.recommendations_url)
    await runtime.event_log.start()
    await recommendations.start()
    metrics = ProjectorMetrics.of(runtime.metrics)
    tasks = [
        *live_projectors(runtime.event_log, index=index, stock=stock, metrics=metrics, batch_size=batch_size),
        recommendations_projector(runtime.event_log, recommendations, metrics=metrics),
    ]
    try:
        await index.ensure_index()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        for task in tasks:
            task.start()
        log.info("projectors running; Ctrl-C to stop", groups=[t.group for t in tasks])
        await stopping.wait()
        log.info("stopping projectors")
    finally:
        for task in tasks:
            await task.stop()
        await index.close()
        await stock.close()
        await recommendations.close()
        await runtime.event_log.close()


@rebuild_app.command("search")
def rebuild_search_command(
    ctx: typer.Context,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Events per batch.")] = 5000,
) -> None:
    """Replay catalog + inventory events into a fresh index, then swap the alias atomically.

    Searches keep answering from the current index until the swap; the live projector keeps running.
    """
    report = asyncio.run(_rebuild(settings_from(ctx), progress=progress, batch_size=batch_size))
    typer.echo(
        f"rebuilt search index: {report.documents} documents from {report.events} events "
        f"in {report.seconds:.1f}s (group {report.group})"
    )


async def _rebuild(settings: Settings, *, progress: bool, batch_size: int) -> RebuildReport:
    from emporium.bootstrap import build_runtime
    from search.module import open_index
    from search.out_of_stock import open_out_of_stock_set
    from search.rebuild import rebuild_search

    runtime = build_runtime(settings, client_id="emporium-rebuild")
    stock = open_out_of_stock_set(settings.cache_url)
    index = open_index(settings.search_url)
    await runtime.event_log.start()
    try:
        await index.ensure_index()
        return await rebuild_search(
            runtime, index=index, stock=stock, progress=progress, batch_size=batch_size
        )
    finally:
        await index.close()
        await stock.close()
        await runtime.event_log.close()
