"""CLI commands for this package (mounted by emporium.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root ``emporium`` command."""
