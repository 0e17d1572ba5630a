"""The ``emporium`` command: one Typer app, sub-commands grouped by what they operate."""

from emporium.cli.main import app, main

__all__ = ["app", "main"]
