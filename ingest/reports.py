"""How an import's report ends, for catalog feeds and stock feeds alike: stamped with its timings, kept
(even when the import was cancelled) and announced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import structlog

from ingest.model import FeedReport
from ingest.store import IngestStore

log = structlog.get_logger(__name__)


async def finish_report(
    store: IngestStore,
    report: FeedReport,
    started: float,
    on_report: Callable[[FeedReport], None] | None,
    *,
    done: str,
    save_failed: str,
    stages: Mapping[str, float] | None = None,
) -> None:
    """Stamp the end and the timings (``stages`` seconds, total, lines per second), keep the report and
    log ``done``. Saving is shielded so a cancelled import still leaves its report, and a store failure
    is logged as ``save_failed`` rather than raised over the import's own outcome."""
    total = time.perf_counter() - started
    lines = report.accepted + report.rejected
    report.finished_at = datetime.now(UTC)
    report.timings = {
        **{k: round(v, 4) for k, v in (stages or {}).items()},
        "total_s": round(total, 4),
        "lines_per_s": round(lines / total, 1) if total > 0 else 0.0,
    }
    try:
        await asyncio.shield(store.save_feed(report))
    except Exception:
        log.exception(save_failed, feed_id=report.feed_id)
    if on_report is not None:
        on_report(report)
    log.info(
        done,
        feed_id=report.feed_id,
        supplier_id=report.supplier_id,
        status=str(report.status),
        accepted=report.accepted,
        rejected=report.rejected,
        unchanged=report.unchanged,
        changed=report.changed,
        removed=report.removed,
    )
