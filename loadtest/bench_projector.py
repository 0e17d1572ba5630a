"""Benchmark: the search projector (SQLite event log -> Tantivy) on the real catalogs.

    python -m loadtest.bench_projector [--runs 3] [--batch 5000] [--keep | --reuse DIR]

1. Imports bigbasket + myntra (about 40k products) once through the ingest profiles into a temporary
   SQLite event log (the synthetic catalog when ``../shared/datasets`` is missing, and it says so).
2. Each run projects the whole log into a fresh Tantivy index: ``ProjectorTask`` + ``SearchProjection``
   in a new consumer group, exactly as ``serve``/``project`` run it (poll, decode, dead-letter check,
   stage the index writes, one index commit per ``STAGED_COMMIT_EVENTS`` records or when the log is
   drained, commit offsets), timed until the group's lag is 0.
3. Same-run baselines, alternating with the projector runs: the raw adapter ``upsert`` of the same
   documents, decoded and built beforehand (not timed), into a fresh index (revision checks included):
   in one call (one commit: the rate the index alone takes them at), and in calls of ``--batch``
   documents (one commit each, like the projector: the ceiling for that batch size).

Prints per-run numbers with process CPU seconds (all threads), the medians, the ratios and the load
average. The machine is shared: when the load average exceeds the CPU count, wall-clock rates follow
other people's jobs, so compare numbers from the same run only, and CPU seconds across runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median

import uvloop
from prometheus_client import CollectorRegistry

from emporium.adapters import EVENT_LOG
from kernel.contracts.events import CATALOG_TOPIC, ProductUpserted, decode_event
from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from kernel.settings import Settings, load_settings
from loadtest.bench_search import import_catalogs
from search.documents import document_from_product
from search.out_of_stock import MemoryOutOfStockSet
from search.port import SearchDocument
from search.projection import SearchProjection
from search.tantivy import TantivySearchIndex


async def project_once(settings: Settings, search_root: Path, batch: int) -> tuple[int, float, float]:
    event_log = EVENT_LOG.open(settings.event_log_url)
    index = TantivySearchIndex(search_root)  # this bench measures the embedded engine whatever the settings
    await event_log.start()
    await index.ensure_index()
    task = ProjectorTask(
        event_log,
        SearchProjection(index=index, stock=MemoryOutOfStockSet()),
        group=f"bench.projector.{uuid.uuid4().hex[:8]}",
        metrics=ProjectorMetrics.of(CollectorRegistry()),
        batch_size=batch,
        poll_timeout=0.05,
    )
    try:
        started, cpu = time.perf_counter(), time.process_time()
        task.start()
        await task.wait_caught_up(poll_s=0.05, timeout_s=600)  # as bench_search
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        events = task.processor.stats.processed
    finally:
        await task.stop()
        await index.close()
        await event_log.close()
    return events, seconds, cpu


async def prebuilt_documents(settings: Settings) -> list[SearchDocument]:
    """Every catalog upsert of the log as the projector would index it (in stock, newest revision)."""
    event_log = EVENT_LOG.open(settings.event_log_url)
    await event_log.start()
    consumer = event_log.consumer([CATALOG_TOPIC], f"bench.prebuild.{uuid.uuid4().hex[:8]}")
    await consumer.start()
    newest: dict[str, SearchDocument] = {}
    try:
        while records := await consumer.poll(10_000, 0.05):
            for record in records:
                event = decode_event(record.value)
                if isinstance(event.payload, ProductUpserted):
                    product = event.payload.product
                    newest[product.product_id] = document_from_product(
                        product,
                        event.revision,
                        in_stock=True,
                        created_at_ms=int(event.occurred_at.timestamp() * 1000),
                    )
    finally:
        await consumer.stop()
        await event_log.close()
    return list(newest.values())


async def raw_upsert_once(
    documents: list[SearchDocument],
    search_root: Path,
    batch: int | None = None,
) -> tuple[int, float, float]:
    """``upsert`` of pre-built documents: in one call, or in calls of ``batch`` (one commit each)."""
    index = TantivySearchIndex(search_root)
    await index.ensure_index()
    step = batch or len(documents)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        written = 0
        for i in range(0, len(documents), step):
            written += await index.upsert(documents[i : i + step])
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await index.close()
    return written, seconds, cpu


class Series:
    """Per-run rates and CPU seconds of one measurement."""

    def __init__(self, label: str, unit: str) -> None:
        self.label, self.unit = label, unit
        self.rates: list[float] = []
        self.cpu: list[float] = []

    def add(self, count: int, seconds: float, cpu: float) -> str:
        self.rates.append(count / seconds)
        self.cpu.append(cpu)
        return f"{self.label} {count} in {seconds:.2f}s (cpu {cpu:.2f}s) = {self.rates[-1]:,.0f} {self.unit}"

    def summary(self) -> str:
        return f"{median(self.rates):>9,.0f} {self.unit:9s} (cpu {median(self.cpu):.2f}s)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=5000, help="projector batch size (the live default)")
    parser.add_argument("--synthetic-products", type=int, default=40_000)
    parser.add_argument("--keep", action="store_true", help="keep the data dir (event log) for --reuse")
    parser.add_argument(
        "--reuse", type=Path, default=None, help="a data dir kept by --keep (skips the import)"
    )
    args = parser.parse_args()

    data_dir = args.reuse or Path(tempfile.mkdtemp(prefix="emporium-bench-projector-"))
    settings = load_settings(env={"EMPORIUM_DATA_DIR": str(data_dir)})
    projector = Series("projector", "events/s")
    raw = Series("raw upsert (1 call)", "docs/s")
    raw_batched = Series(f"raw upsert (calls of {args.batch})", "docs/s")
    loads: list[float] = []
    try:
        if args.reuse is None:
            uvloop.run(import_catalogs(settings, args.synthetic_products))
        documents = uvloop.run(prebuilt_documents(settings))
        print(f"{len(documents)} distinct products in the log; batch size {args.batch}")
        for run in range(1, args.runs + 1):
            lines = []
            for series, measure in (
                (projector, lambda root: project_once(settings, root, args.batch)),
                (raw, lambda root: raw_upsert_once(documents, root)),
                (raw_batched, lambda root: raw_upsert_once(documents, root, args.batch)),
            ):
                root = Path(tempfile.mkdtemp(prefix="index-", dir=data_dir))
                try:
                    lines.append(series.add(*uvloop.run(measure(root))))
                finally:
                    shutil.rmtree(root, ignore_errors=True)
            loads.append(os.getloadavg()[0])
            print(f"run {run} (load {loads[-1]:.2f}): " + "; ".join(lines), flush=True)
    finally:
        if args.keep or args.reuse is not None:
            print(f"data kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)

    p, r, rb = median(projector.rates), median(raw.rates), median(raw_batched.rates)
    print()
    load = f"1-min load average during the runs {median(loads):.2f} on {os.cpu_count()} CPUs"
    print(f"medians of {args.runs} runs ({load}):")
    print(f"  projection into Tantivy            {projector.summary()}  target >= 20,000 events/s")
    print(f"  raw adapter upsert, one call       {raw.summary()}  same documents, same run")
    print(f"  raw adapter upsert, calls of {args.batch:<5} {raw_batched.summary()}")
    print(f"  projector / raw upsert (one call)         {p / r:.0%}")
    print(f"  projector / raw upsert (calls of {args.batch})  {p / rb:.0%}")


if __name__ == "__main__":
    main()
