"""Supplier ingest: feeds (CSV, NDJSON, JSON array; gzip) -> canonical products -> catalog events.

parsing (streaming readers) -> profiles (supplier columns -> draft) -> validation (the one gate)
-> model (fingerprints, change plans, reports; pure) -> service (use cases) over two ports:
the event log (kernel.eventlog) and the ingest store (store.py; SQL adapters in store_sql.py).
api.py / cli.py / demo.py are the edges; module.py wires the package into the app.
"""
