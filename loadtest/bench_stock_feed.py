"""Stock-feed benchmark: rows ``sku, warehouse, quantity`` end to end (read, check, scope, decide per SKU,
write counters + ledger + outbox events) into a fresh embedded stack, as ``emporium stock import`` and
``POST /v1/suppliers/{id}/stock`` run them. Target: at least 50k rows/s.

    python -m loadtest.bench_stock_feed [--rows 200000] [--warehouses 4] [--order sku|warehouse]
                                        [--runs 3] [--http]

The feed has ``--rows`` rows over ``rows / warehouses`` SKUs. ``--order sku`` (default) lists a SKU's
warehouses together, as an export per SKU does: a SKU's rows are one stock change. ``--order warehouse``
lists one warehouse after the other, so each row is a stock change of its own (a SKU's rows land in
different batches): the most writes and events per row. Each run imports it three times on fresh state:
the first creates every SKU (every row a change), the second names the same quantities (every row
unchanged: read, check and compare only), the third changes every quantity. The same-run baseline is
``csv.reader`` over the same file, nothing else. ``--http`` also pushes the feed to a served app
(``emporium serve`` in a child process) over one connection: the route's spooling and the request on top.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from emporium.container import Container
from ingest.model import FeedReport
from ingest.parsing import FeedFormat
from ingest.service import IngestService
from ingest.stock_feed import StockFeedService
from kernel.observability import configure_logging
from kernel.settings import Settings, load_settings
from loadtest.children import spawn_emporium

TARGET_ROWS_PER_S = 50_000
PASSES = ("create", "unchanged", "change")


def write_feed(
    path: Path, rows: int, warehouses: int, quantity: Callable[[int], int], *, by_sku: bool = True
) -> Path:
    skus = max(1, rows // warehouses)
    pairs = (
        ((s, w) for s in range(skus) for w in range(warehouses))
        if by_sku
        else ((s, w) for w in range(warehouses) for s in range(skus))
    )
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sku", "warehouse", "quantity"])
        for s, w in pairs:
            writer.writerow([f"STK-{s:07d}", f"wh-{w}", quantity(s + w)])
    return path


def baseline_csv(path: Path) -> float:
    """Rows/s of csv.reader alone over the file: the floor any CSV import pays."""
    started = time.perf_counter()
    with path.open(newline="", encoding="utf-8") as fh:
        rows = sum(1 for _ in csv.reader(fh)) - 1
    return rows / (time.perf_counter() - started)


async def import_passes(
    settings: Settings, feeds: dict[str, Path]
) -> dict[str, tuple[FeedReport, float, float]]:
    """The three passes on fresh state: pass -> (report, rows per wall second, rows per CPU second of this
    process, every thread: the view a loaded machine disturbs least)."""
    container = Container(settings, client_id="bench-stock", inventory_options={"sweep_interval": None})
    store, engine, event_log = container.ingest_store(), container.inventory_engine(), container.event_log()
    service = StockFeedService(store, engine)
    out: dict[str, tuple[FeedReport, float, float]] = {}
    async with container:
        supplier = f"bench-{uuid.uuid4().hex[:8]}"
        await IngestService(store, event_log, key_secret=container.key_secret).add_supplier(supplier)
        for name in PASSES:
            with feeds[name].open("rb") as fh:
                started, cpu = time.perf_counter(), time.process_time()
                report = await service.import_stock(supplier, fh, fmt=FeedFormat.CSV)
                elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu
            rows = report.accepted + report.rejected
            out[name] = (report, rows / elapsed, rows / cpu_s)
    return out


def http_pass(feed: Path, tmp: Path) -> float:
    """Rows/s of one stock feed pushed to `emporium serve` (embedded) over HTTP, fresh state."""
    port = _free_port()
    env = {
        **os.environ,
        "EMPORIUM_DATA_DIR": str(tmp),
        "EMPORIUM_ADMIN_TOKEN": "bench",
        "EMPORIUM_LOG_LEVEL": "warning",
    }
    env["EMPORIUM_FEED_MAX_BYTES"] = str(1 << 30)
    server = spawn_emporium(["serve", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=600) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("emporium serve did not start")
                time.sleep(0.2)
            created = client.post(
                "/v1/suppliers", json={"supplier_id": "bench"}, headers={"Authorization": "Bearer bench"}
            )
            created.raise_for_status()
            headers = {"X-Api-Key": created.json()["api_key"], "Content-Type": "text/csv"}
            body = feed.read_bytes()
            started = time.perf_counter()
            response = client.post("/v1/suppliers/bench/stock", content=body, headers=headers)
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            report = response.json()
            return (report["accepted"] + report["rejected"]) / elapsed
    finally:
        server.terminate()
        server.wait(30)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fmt_rate(value: float) -> str:
    return f"{value:>10,.0f} rows/s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--warehouses", type=int, default=4)
    parser.add_argument("--order", choices=("sku", "warehouse"), default="sku", help="row order of the feed")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--http", action="store_true", help="also push the feed to a served app over HTTP")
    args = parser.parse_args()
    configure_logging("warning", "console")

    with tempfile.TemporaryDirectory(prefix="bench-stock-") as tmp_dir:
        tmp = Path(tmp_dir)
        by_sku = args.order == "sku"
        feeds = {
            "create": write_feed(
                tmp / "create.csv", args.rows, args.warehouses, lambda n: n % 500, by_sku=by_sku
            ),
            "change": write_feed(
                tmp / "change.csv", args.rows, args.warehouses, lambda n: n % 500 + 1, by_sku=by_sku
            ),
        }
        feeds["unchanged"] = feeds["create"]
        rows = sum(1 for _ in feeds["create"].open()) - 1
        print(
            f"feed: {rows:,} rows over {rows // args.warehouses:,} SKUs x {args.warehouses} warehouses, "
            f"ordered by {args.order}"
        )
        print(f"machine load average (1 min) at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{args.runs} runs, medians\n")
        baseline = statistics.median(baseline_csv(feeds["create"]) for _ in range(args.runs))
        print(f"{'baseline  csv.reader only':<40}{fmt_rate(baseline)}")

        runs = []
        for run in range(args.runs):
            settings = load_settings(env={}, data_dir=str(tmp / f"run-{run}"), log_level="warning")
            runs.append(asyncio.run(import_passes(settings, feeds)))
        for name in PASSES:
            rate = statistics.median(r[name][1] for r in runs)
            cpu_rate = statistics.median(r[name][2] for r in runs)
            report = runs[len(runs) // 2][name][0]
            verdict = f"  target {TARGET_ROWS_PER_S:,}: {'PASS' if rate >= TARGET_ROWS_PER_S else 'FAIL'}"
            label = f"embedded stock feed, {name}"
            print(f"{label:<40}{fmt_rate(rate)}  ratio to baseline {rate / baseline:.3f}{verdict}")
            print(f"{'':<40}{cpu_rate:>10,.0f} rows per CPU-second of this process (all threads)")
            print(
                f"{'':<40}accepted {report.accepted:,}, changed {report.changed:,}, "
                f"unchanged {report.unchanged:,}, rejected {report.rejected:,}"
            )
        if args.http:
            rates = [http_pass(feeds["create"], tmp / f"http-{run}") for run in range(args.runs)]
            rate = statistics.median(rates)
            label = "HTTP POST .../stock, create"
            print(f"{label:<40}{fmt_rate(rate)}  ratio to baseline {rate / baseline:.3f}")


if __name__ == "__main__":
    main()
