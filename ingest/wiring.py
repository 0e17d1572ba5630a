"""Process-level wiring for the CLI, the demo and benchmarks: open the event log and the ingest store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from ingest.model import FeedReport, Mode
from ingest.parsing import FeedFormat, format_from_filename
from ingest.service import IngestService
from ingest.store import open_ingest_store
from kernel.eventlog.factory import open_event_log
from kernel.settings import Settings


@asynccontextmanager
async def ingest_service(
    settings: Settings, *, client_id: str = "emporium-ingest"
) -> AsyncIterator[IngestService]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    event_log = open_event_log(settings.event_log_url, client_id=client_id)
    await event_log.start()
    store = open_ingest_store(settings.database_url)
    try:
        await store.start()
        yield IngestService(store, event_log)
    finally:
        await store.close()
        await event_log.close()


async def import_path(
    service: IngestService,
    path: Path,
    *,
    supplier_id: str,
    profile: str = "canonical",
    mode: Mode = "delta",
    fmt: FeedFormat | None = None,
    on_read: Callable[[int], None] | None = None,
) -> FeedReport:
    """Import a feed file; its folder is where profiles look for side files (instacart)."""
    fmt = fmt or format_from_filename(path.name)
    with path.open("rb") as fh:
        return await service.import_feed(
            supplier_id, fh, fmt=fmt, profile=profile, mode=mode, source_dir=path.parent, on_read=on_read
        )
