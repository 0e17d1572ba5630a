"""``emporium storefronts add|rotate-key``: storefronts and their API keys, no HTTP in between."""

from __future__ import annotations

from typing import Annotated

import typer

from emporium.cli.context import run, settings_from
from emporium.container import ingest_service
from ingest.errors import IngestError

storefronts_app = typer.Typer(
    help="Storefronts (shop front ends) and their API keys: customer-facing writes such as "
    "reservations need one (X-Api-Key: sfk_...).",
    no_args_is_help=True,
)


@storefronts_app.command("add")
def add_storefront(
    ctx: typer.Context,
    storefront_id: Annotated[str, typer.Argument(help="Stable id (letters, digits, '.', '_', '-').")],
    name: Annotated[str | None, typer.Option(help="Display name (defaults to the id).")] = None,
) -> None:
    """Create a storefront and print its API key, alone on the last line (shown once, stored hashed)."""
    settings = settings_from(ctx)

    async def add() -> str:
        async with ingest_service(settings) as service:
            _, key = await service.identities.add_storefront(storefront_id, name)
            return key

    try:
        key = run(add())
    except IngestError as exc:
        typer.echo(f"error: {exc.reason}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"storefront {storefront_id!r} created; its API key (send as X-Api-Key; shown only once):")
    typer.echo(key)


@storefronts_app.command("rotate-key")
def rotate_key(
    ctx: typer.Context,
    storefront_id: Annotated[str, typer.Argument(help="Existing storefront id.")],
) -> None:
    """Replace a storefront's API key; prints the new key alone on the last line."""
    settings = settings_from(ctx)

    async def rotate() -> str:
        async with ingest_service(settings) as service:
            return await service.identities.rotate_storefront_key(storefront_id)

    try:
        key = run(rotate())
    except IngestError as exc:
        typer.echo(f"error: {exc.reason}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"new API key for storefront {storefront_id!r} (the old one stops working within seconds):")
    typer.echo(key)


def register(app: typer.Typer) -> None:
    app.add_typer(storefronts_app, name="storefronts")
