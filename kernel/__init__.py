"""Emporium's shared kernel: event contracts, the event-log port and adapters, settings, HTTP error shape.

Every context imports it; it imports no context.
"""

__version__ = "0.1.0"
