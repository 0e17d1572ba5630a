"""``emporium storefronts add|rotate-key``: storefronts and their API keys, no HTTP in between."""

from __future__ import annotations

from typing import Annotated

import typer

from emporium.cli.context import settings_from
from emporium.cli.keys import print_issued_key
from ingest.service import IngestService

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

    async def add(service: IngestService) -> str:
        return (await service.identities.add_storefront(storefront_id, name))[1]

    print_issued_key(
        settings_from(ctx),
        add,
        f"storefront {storefront_id!r} created; its API key (send as X-Api-Key; shown only once):",
    )


@storefronts_app.command("rotate-key")
def rotate_key(
    ctx: typer.Context,
    storefront_id: Annotated[str, typer.Argument(help="Existing storefront id.")],
) -> None:
    """Replace a storefront's API key; prints the new key alone on the last line."""

    async def rotate(service: IngestService) -> str:
        return await service.identities.rotate_storefront_key(storefront_id)

    print_issued_key(
        settings_from(ctx),
        rotate,
        f"new API key for storefront {storefront_id!r} (the old one stops working within seconds):",
    )


def register(app: typer.Typer) -> None:
    app.add_typer(storefronts_app, name="storefronts")
