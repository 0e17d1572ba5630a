"""Emporium's shared kernel: event contracts, the event-log port, settings, app factory and CLI."""

__version__ = "0.1.0"
