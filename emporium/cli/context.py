"""What every sub-command shares: the settings loaded once by the root command, and how a command's
coroutine runs (a port URL that names no adapter is one line on stderr and exit code 2)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer

from emporium.adapters import AdapterConfigError
from kernel.settings import Settings

T = TypeVar("T")


def settings_from(ctx: typer.Context) -> Settings:
    """Settings loaded once by the root callback and shared with every sub-command."""
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


@contextmanager
def reported_config_errors() -> Iterator[None]:
    """A URL the adapter registry refuses becomes ``error: ...`` on stderr and exit code 2."""
    try:
        yield
    except AdapterConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine (which builds its own container) under ``reported_config_errors``."""
    with reported_config_errors():
        return asyncio.run(coro)
