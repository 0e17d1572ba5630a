"""What every sub-command reads from the root command: the settings, loaded once."""

from __future__ import annotations

import typer

from kernel.settings import Settings


def settings_from(ctx: typer.Context) -> Settings:
    """Settings loaded once by the root callback and shared with every sub-command."""
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings
