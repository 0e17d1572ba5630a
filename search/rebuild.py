"""Zero-downtime rebuild of the search index from the event log.

``emporium rebuild search``:

1. ``begin_rebuild()`` creates a fresh physical index that searches do not see yet.
2. A projector in its own consumer group (``read-models.search.rebuild.<time>``) replays the catalog and
   inventory topics from the beginning into it, with a progress bar, until its lag is 0. Meanwhile the live
   projector keeps writing to the live alias, so searches keep answering from the old index, complete and
   current.
3. ``finish_rebuild()`` swaps the alias atomically (searches switch in one step) and drops the old index.
4. The rebuild projector keeps going until it has caught up once more *after* the swap. Events published
   between its last poll and the swap were written by the live projector to the old index only; this second
   catch-up applies them to the new one. Events published after the swap reach the new index through the
   live projector (which writes through the alias). Every write is versioned by the event revision, so an
   event applied by both projectors is harmless. (Embedded Tantivy allows one writing process per index
   directory: if ``serve`` runs its in-process projector while this command runs in another shell, the
   catch-up gives up after a timeout with a warning; run the rebuild in the serving process, or stop the
   projector, to close that window completely.)

The out-of-stock set is not rebuilt (it is exact already and revision-checked); the replay only reads it to
set each document's stock flag, and re-applies stock events to it, which changes nothing that is current.
"""

from __future__ import annotations

import time
from typing import cast

import msgspec
import structlog

from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from kernel.runtime import Runtime
from search.out_of_stock import OutOfStockSet
from search.port import RebuildableSearchIndex
from search.projection import SearchProjection

log = structlog.get_logger(__name__)


class RebuildReport(msgspec.Struct, kw_only=True):
    group: str
    events: int
    documents: int
    seconds: float


async def rebuild_search(
    runtime: Runtime,
    *,
    index: RebuildableSearchIndex,
    stock: OutOfStockSet,
    progress: bool = True,
    batch_size: int = 2000,
    group: str | None = None,
    catch_up_timeout_s: float = 30.0,
) -> RebuildReport:
    """Replay the log into a fresh index and swap it in; ``index`` is the live (alias) handle."""
    group = group or f"read-models.search.rebuild.{time.strftime('%Y%m%dT%H%M%S')}"
    started = time.perf_counter()
    projection = SearchProjection(index=None, stock=stock)
    total = sum([await runtime.event_log.lag(topic, group) for topic in projection.topics])

    new_index = await index.begin_rebuild()
    projection.index = new_index
    bar = _progress(total, enabled=progress)
    task = ProjectorTask(
        runtime.event_log,
        projection,
        group=group,
        metrics=ProjectorMetrics.of(runtime.metrics),
        replay=True,
        batch_size=batch_size,
        poll_timeout=0.2,
        on_batch=bar.update,
    )
    log.info("search rebuild started", group=group, events=total)
    task.start()
    try:
        await task.wait_caught_up(poll_s=0.2)
        await new_index.refresh()
        await task.wait_caught_up(poll_s=0.02)  # shrink the window that step 4 has to cover
        await index.finish_rebuild(new_index)
        log.info("search alias swapped to the rebuilt index")
        # Step 4 writes through the live alias (for Tantivy the rebuilt directory is now the live one).
        projection.index = index
        try:
            await task.wait_caught_up(poll_s=0.05, timeout_s=catch_up_timeout_s)
        except TimeoutError:
            log.warning(
                "post-swap catch-up did not finish (another process may hold the embedded index writer); "
                "events published during the swap are applied by the live projector",
                timeout_s=catch_up_timeout_s,
            )
        await index.refresh()
    finally:
        await task.stop()
        bar.close()
    documents = await index.count()
    report = RebuildReport(
        group=group,
        events=task.processor.stats.processed,
        documents=documents,
        seconds=round(time.perf_counter() - started, 3),
    )
    log.info("search rebuild finished", **msgspec.to_builtins(report))
    return report


class _NoBar:
    def update(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


def _progress(total: int, *, enabled: bool) -> _NoBar:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return cast(_NoBar, tqdm(total=total, unit="ev", desc="rebuild search", smoothing=0.1))
