"""Issuing an API key from the CLI (suppliers and storefronts, added or rotated): one way to run it,
report a refusal and print the key alone on the last line, which scripts read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import typer

from emporium.cli.context import run
from emporium.container import ingest_service
from ingest.errors import IngestError
from ingest.service import IngestService
from kernel.settings import Settings


def print_issued_key(
    settings: Settings, issue: Callable[[IngestService], Awaitable[str]], announcement: str
) -> None:
    """Run ``issue`` over the ingest service; print ``announcement`` and the key, or exit 1 saying why."""

    async def issued() -> str:
        async with ingest_service(settings) as service:
            return await issue(service)

    try:
        key = run(issued())
    except IngestError as exc:
        typer.echo(f"error: {exc.reason}", err=True)
        raise typer.Exit(1) from None
    typer.echo(announcement)
    typer.echo(key)
