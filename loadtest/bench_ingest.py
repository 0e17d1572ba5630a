"""Supplier-feed import benchmark: bigbasket_products.csv end to end (parse, map, validate,
fingerprint, publish, commit) into a fresh embedded stack, and into Kafka when ``--kafka-url`` is given.

    python -m loadtest.bench_ingest [--kafka-url kafka://127.0.0.1:9092] [--runs 3] [--file PATH]

Each measurement runs ``--runs`` times on fresh state; medians are printed with the same-run
baseline (``csv.reader`` over the same file, nothing else) and the ratio. The stage timings of the
report (prepare = read+parse+map+validate+fingerprint, lookup, publish, commit) say where the time
goes, and a cProfile of the CPU stage names the hottest functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import csv
import io
import os
import pstats
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from emporium.container import ingest_service
from ingest.batches import prepare_batch
from ingest.model import FeedReport
from ingest.parsing import FeedFormat, FeedReader
from ingest.profiles import get_profile
from ingest.service import import_path
from ingest.synthetic import write_csv
from kernel.settings import load_settings

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bigbasket_products.csv"
TARGET_EMBEDDED = 20_000
TARGET_KAFKA = 10_000


def baseline_csv(path: Path) -> float:
    """Lines/s of csv.reader alone over the file: the floor any CSV import pays."""
    started = time.perf_counter()
    with path.open(newline="", encoding="utf-8") as fh:
        lines = sum(1 for _ in csv.reader(fh)) - 1
    return lines / (time.perf_counter() - started)


async def import_once(
    path: Path, profile: str, *, kafka_url: str | None, reimport: bool
) -> tuple[FeedReport, float, float]:
    """One import on fresh state: (report, lines per wall second, lines per CPU second of this process)."""
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        overrides = {"event_log_url": kafka_url} if kafka_url else {}
        settings = load_settings(env={}, data_dir=tmp, **overrides)
        async with ingest_service(settings, client_id="bench-ingest") as service:
            supplier = f"bench-{uuid.uuid4().hex[:8]}"  # fresh namespace: every line is a change
            await service.add_supplier(supplier)
            started, cpu = time.perf_counter(), time.process_time()
            report = await import_path(service, path, supplier_id=supplier, profile=profile)
            elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu
            if reimport:
                started, cpu = time.perf_counter(), time.process_time()
                report = await import_path(service, path, supplier_id=supplier, profile=profile)
                elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    lines = report.accepted + report.rejected
    return report, lines / elapsed, lines / cpu_s


def profile_cpu_stage(path: Path, profile_name: str, top: int = 12) -> str:
    """cProfile of read+parse+map+validate+fingerprint (the service runs it in a worker thread)."""
    profile = get_profile(profile_name, "bench", source_dir=path.parent)
    profiler = cProfile.Profile()
    with path.open("rb") as fh:
        reader = FeedReader(fh, FeedFormat.CSV)
        records = reader.records()
        profiler.enable()
        while not prepare_batch(records, profile, "bench", 2000).exhausted:
            pass
        profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def fmt_rate(value: float) -> str:
    return f"{value:>10,.0f} lines/s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--file", type=Path, default=DATASET)
    parser.add_argument("--profile", default="bigbasket", help="mapping profile of --file")
    parser.add_argument(
        "--kafka-url", default=None, help="kafka://HOST:PORT to also measure the Kafka adapter"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-cprofile", action="store_true")
    args = parser.parse_args()

    path: Path = args.file
    if not path.exists():
        print(f"{path} not found: using a synthetic catalog of 27,555 products (canonical profile) instead")
        path = write_csv(Path(tempfile.mkdtemp(prefix="bench-ingest-")) / "synthetic.csv", 27_555)
        args.profile = "canonical"
    print(f"feed: {path} (profile {args.profile}), {args.runs} runs each, medians\n")

    baseline = statistics.median(baseline_csv(path) for _ in range(args.runs))
    print(f"machine load average (1 min) at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"baseline  csv.reader only            {fmt_rate(baseline)}")

    def measure(label: str, kafka_url: str | None, reimport: bool, target: float | None) -> None:
        runs = [
            asyncio.run(import_once(path, args.profile, kafka_url=kafka_url, reimport=reimport))
            for _ in range(args.runs)
        ]
        rate = statistics.median(r for _, r, _ in runs)
        cpu_rate = statistics.median(c for _, _, c in runs)
        report = runs[len(runs) // 2][0]
        verdict = "" if target is None else f"  target {target:,.0f}: {'PASS' if rate >= target else 'FAIL'}"
        print(f"{label:<36}{fmt_rate(rate)}  ratio to baseline {rate / baseline:.3f}{verdict}")
        print(f"{'':<36}{cpu_rate:>10,.0f} lines per CPU-second of this process (load-independent view)")
        stages = {k: v for k, v in report.timings.items() if k.endswith("_s")}
        print(
            f"{'':<36}accepted {report.accepted}, rejected {report.rejected}, changed {report.changed}; "
            f"stages (s): {stages}"
        )

    measure("embedded (SQLite log + SQLite store)", None, False, TARGET_EMBEDDED)
    measure("embedded re-import (all unchanged)", None, True, None)
    if args.kafka_url:
        measure("kafka log + SQLite store", args.kafka_url, False, TARGET_KAFKA)
    else:
        print("kafka: skipped (pass --kafka-url kafka://HOST:PORT)")

    if not args.no_cprofile:
        print("\ncProfile of the CPU stage (read + parse + map + validate + fingerprint), by own time:")
        print(profile_cpu_stage(path, args.profile))


if __name__ == "__main__":
    main()
