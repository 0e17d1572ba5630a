"""The ``emporium`` command. Sub-commands live next to the code they drive and are mounted here."""

from __future__ import annotations

import gc
import json
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from emporium.cli import analytics, evaluate, feeds, inventory, projectors, services, storefronts
from emporium.cli.context import reported_config_errors, run, settings_from
from kernel.observability import configure_logging
from kernel.settings import load_settings

app = typer.Typer(
    name="emporium",
    help="Emporium: supplier feeds -> event log -> search, stock and homepage read models.\n\n"
    "Runs embedded (SQLite, Tantivy, in-process cache) by default; point EMPORIUM_<PORT>_URL at "
    "Kafka, Elasticsearch, Redis, MySQL or Cassandra for a cluster.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where embedded data lives (env EMPORIUM_DATA_DIR, default ./.emporium)."),
    ] = None,
    log_format: Annotated[str | None, typer.Option(help="json or console")] = None,
) -> None:
    settings = load_settings(data_dir=str(data_dir) if data_dir else None, log_format=log_format)
    configure_logging(settings.log_level, settings.log_format)
    ctx.obj = settings


class EventLoop(StrEnum):
    asyncio = "asyncio"
    uvloop = "uvloop"


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (env EMPORIUM_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (env EMPORIUM_PORT).")] = None,
    loop: Annotated[
        EventLoop,
        typer.Option(
            help="Event loop. asyncio keeps accepting new connections promptly while busy; uvloop (libuv) "
            "accepts one connection per loop turn, so under load a new client can wait seconds."
        ),
    ] = EventLoop.asyncio,
    proxy_headers: Annotated[
        bool,
        typer.Option(
            help="Trust X-Forwarded-For/-Proto from a reverse proxy on 127.0.0.1 (uvicorn's "
            "--forwarded-allow-ips). Off by default: it costs ~5% CPU per request when nothing proxies."
        ),
    ] = False,
) -> None:
    """Serve the HTTP API (storefront, supplier feeds, operations, OpenAPI docs at /docs)."""
    # The web stack loads only for the commands that serve (start-up cost of every other command).
    import uvicorn

    from emporium.app import create_app
    from emporium.http_protocol import server_options

    settings = settings_from(ctx)
    with reported_config_errors():
        asgi_app = create_app(settings)
    # The ~80k objects of imports and the app live as long as the process: move them out of the
    # collector's reach, or every full collection under load re-scans them (a 50-90 ms stall here).
    # Requests make little cyclic garbage, but the default threshold (700) runs ~150 young
    # collections a second under load (~8% of the wall clock at 200 clients); 20k runs a few a minute.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    uvicorn.run(
        asgi_app,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        access_log=False,
        loop=loop.value,
        proxy_headers=proxy_headers,
        **server_options(settings),  # the httptools protocol with its caps, connection limit, keep-alive
    )


@app.command()
def demo(
    ctx: typer.Context,
    products: Annotated[int, typer.Option(help="Synthetic products to generate.")] = 5000,
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
) -> None:
    """Import a deterministic synthetic catalog as supplier 'demo', print its feed report, then serve.

    Without EMPORIUM_ADMIN_TOKEN the demo makes one (kept in the data dir) so that admin calls such as
    ``PUT /v1/stock/{sku}`` can be tried.
    """
    # Not at module level: emporium.demo imports emporium.cli.feeds, which would import this module back.
    from emporium.demo import demo_storefront_key_path, index_demo, seed_demo

    settings = settings_from(ctx)
    if settings.admin_token is None:
        token_file = settings.data_dir / "demo" / "admin-token"
        token_file.parent.mkdir(parents=True, exist_ok=True)
        if not token_file.exists():
            token_file.write_text(secrets.token_urlsafe(24))
            token_file.chmod(0o600)
        settings = msgspec.structs.replace(settings, admin_token=token_file.read_text().strip())
        ctx.find_root().obj = settings
        typer.echo(f"demo admin token (Authorization: Bearer TOKEN), saved in {token_file}:")
        typer.echo(settings.admin_token)
    with reported_config_errors():
        seed_demo(settings, products=products)
    run(index_demo(settings))
    shown = host or settings.host
    shown = "127.0.0.1" if shown in ("0.0.0.0", "::") else shown
    typer.echo(
        f"storefront page: http://{shown}:{port or settings.port}/"
        f" (for the cart it asks for the storefront key saved in {demo_storefront_key_path(settings)})"
    )
    serve(ctx, host=host, port=port)


@app.command("config")
def show_config(ctx: typer.Context) -> None:
    """Print the effective configuration (one URL per port), secrets masked."""
    typer.echo(json.dumps(settings_from(ctx).public_dict(), indent=2))


for _group in (feeds, storefronts, projectors, inventory, services, analytics, evaluate):
    _group.register(app)


def main() -> None:
    app()
