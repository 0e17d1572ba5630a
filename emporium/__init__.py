"""Emporium's entry points: the HTTP app, the ``emporium`` CLI and the composition root (``container``
over the adapter registry ``adapters``).

This package sits on top: it imports every context (ingest, inventory, search, read_models) and the
shared kernel; nothing imports it back.
"""
