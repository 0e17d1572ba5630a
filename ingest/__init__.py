"""Supplier ingest: feeds (CSV, NDJSON, JSON array; gzip) -> canonical products -> catalog events.

parsing (streaming readers) -> profiles (supplier columns -> draft) -> validation (the one gate)
-> model (fingerprints, change plans, reports; pure) -> service (use cases) over two ports:
the event log (kernel.eventlog) and the ingest store (store.py; its SQL in store_sql.py,
the SQLite and MySQL adapters in store_dialects.py).
api.py is the HTTP edge; module.py mounts the package into the app over the adapters it is given
(the CLI commands and the demo live in ``emporium``).
"""
