"""How fast the activity archive writes the lake, against raw pyarrow writing the same records, same run.

    python -m loadtest.bench_archive [--events 200000] [--runs 3] [--dir DIR]

Synthetic activity (views, searches, cart adds, purchases of one to three items, over six hours) is
encoded as it travels on the log and published once into a fresh embedded (SQLite) event log. Each run
then measures, alternating (A B C A B C ...):

- **archive, writer**: the encoded records in memory -> ``RowBuffer`` (decode, map) -> Arrow table per
  log partition -> hour files written durably (fsync, rename) by ``Lake.write_group``, as ``Archiver.flush``
  does; the archive's own cost, with the log out of the way;
- **raw pyarrow**: the same records, already decoded into one Python dict per row (built before the
  clock starts), grouped by hour, ``pa.Table.from_pylist`` + ``pq.write_table`` per hour; no decoding,
  no fsync: pyarrow's cost alone, the floor any writer pays;
- **archive, end to end**: ``catch_up`` over the SQLite log into an empty lake (poll, decode, write,
  commit): what ``emporium analytics archive`` does.

Targets (issue 15): archive >= 100k events/s embedded; archive >= 0.5x raw pyarrow. Prints medians,
per-run ratios and the load average (the machine is shared: compare ratios, not absolutes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from analytics.archive import catch_up
from analytics.archive.lake import Lake, PlannedFile, live_file_name
from analytics.archive.rows import RowBuffer, split_by_hour
from analytics.schema import ACTIVITY_SCHEMA, partition_dir
from kernel.contracts.events import (
    ACTIVITY_TOPIC,
    AddedToCart,
    Payload,
    ProductViewed,
    Purchased,
    PurchasedItem,
    SearchPerformed,
    decode_event,
    encode_event,
    new_event,
)
from kernel.eventlog.port import OutgoingMessage, Record
from kernel.eventlog.sqlite import SqliteEventLog

START = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
REGIONS = ("BLR", "DEL", "MUM", "HYD", "CHE", None)


def synthetic(n: int, seed: int = 15) -> list[tuple[str, bytes]]:
    """``n`` encoded activity events (key, value), deterministic."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        user = f"user-{rng.randrange(20_000)}" if rng.random() < 0.7 else None
        session = None if user else f"sess-{rng.randrange(50_000)}"
        region = rng.choice(REGIONS)
        product = f"sup{rng.randrange(20)}:p{rng.randrange(30_000)}"
        roll = rng.random()
        payload: Payload
        if roll < 0.5:
            payload = ProductViewed(
                product_id=product,
                user_id=user,
                session_id=session,
                region=region,
                category="Home>Kitchen",
                brand="Acme",
            )
        elif roll < 0.85:
            payload = SearchPerformed(
                query=f"query {rng.randrange(5000)}",
                total=rng.randrange(500),
                user_id=user,
                session_id=session,
                region=region,
            )
        elif roll < 0.95:
            payload = AddedToCart(
                product_id=product,
                sku=f"{product}-s",
                quantity=1 + rng.randrange(3),
                user_id=user,
                session_id=session,
                region=region,
                unit_price=Decimal(rng.randrange(100, 99_999)) / 100,
            )
        else:
            items = tuple(
                PurchasedItem(
                    product_id=f"{product}{k}",
                    sku=f"{product}{k}-s",
                    quantity=1,
                    unit_price=Decimal(rng.randrange(100, 99_999)) / 100,
                    category="Home>Kitchen",
                    brand="Acme",
                )
                for k in range(1 + rng.randrange(3))
            )
            payload = Purchased(
                order_id=f"order-{i}",
                user_id=user or f"guest-{i}",
                items=items,
                session_id=session,
                region=region,
            )
        key = user or session or product
        event = new_event(payload, key=key, revision=1, producer="bench")
        event = msgspec.structs.replace(event, occurred_at=START + timedelta(seconds=i * 6 * 3600 / n))
        out.append((key, encode_event(event)))
    return out


def as_dict_rows(values: list[bytes]) -> list[dict[str, Any]]:
    """The same records as plain row dicts (what the raw pyarrow baseline is handed, decoded already)."""
    rows: list[dict[str, Any]] = []
    for value in values:
        event = decode_event(value)
        p = event.payload
        base = {
            "event_id": event.event_id,
            "occurred_at": event.occurred_at,
            "source": "live",
            "user_id": p.user_id,
            "session_id": p.session_id,
            "region": p.region,
        }
        if isinstance(p, SearchPerformed):
            rows.append({**base, "event_type": "search", "query": p.query})
        elif isinstance(p, ProductViewed):
            rows.append(
                {
                    **base,
                    "event_type": "view",
                    "product_id": p.product_id,
                    "category": p.category,
                    "brand": p.brand,
                }
            )
        elif isinstance(p, AddedToCart):
            rows.append(
                {
                    **base,
                    "event_type": "cart_add",
                    "product_id": p.product_id,
                    "sku": p.sku,
                    "quantity": p.quantity,
                    "unit_price": p.unit_price,
                }
            )
        elif isinstance(p, Purchased):
            for n, item in enumerate(p.items):
                rows.append(
                    {
                        **base,
                        "event_id": f"order:{p.order_id}:{n}",
                        "event_type": "purchase",
                        "product_id": item.product_id,
                        "sku": item.sku,
                        "quantity": item.quantity,
                        "unit_price": item.unit_price,
                        "currency": p.currency,
                        "category": item.category,
                        "brand": item.brand,
                        "order_id": p.order_id,
                    }
                )
    return rows  # fmt: skip


def raw_pyarrow(rows: list[dict[str, Any]], out: Path) -> None:
    by_hour: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_hour[partition_dir(row["occurred_at"])].append(row)
    for n, (part, hour_rows) in enumerate(by_hour.items()):
        directory = out / "activity" / part
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            pa.Table.from_pylist(hour_rows, schema=ACTIVITY_SCHEMA), directory / f"raw-{n}.parquet"
        )


def archive_writer(records: list[Record], out: Path) -> None:
    lake = Lake(f"file://{out}")
    by_partition: dict[int, list[Record]] = defaultdict(list)
    for record in records:
        by_partition[record.partition].append(record)
    for partition, part in by_partition.items():
        buffer = RowBuffer()
        for record in part:
            buffer.add(record.value)
        hours = split_by_hour(buffer.to_table())
        first, last = part[0].offset, part[-1].offset
        files = [
            PlannedFile(hour, live_file_name(ACTIVITY_TOPIC, partition, first, last, i, len(hours)), table)
            for i, (hour, table) in enumerate(hours, start=1)
        ]
        lake.write_group(files)


async def read_all(log: SqliteEventLog, group: str) -> list[Record]:
    consumer = log.consumer([ACTIVITY_TOPIC], group)
    await consumer.start()
    records: list[Record] = []
    try:
        while batch := await consumer.poll(5000, 0.5):
            records += batch
    finally:
        await consumer.stop()
    return records


def timed(action: Callable[[], Any]) -> tuple[float, float]:
    """Wall and CPU seconds (the process's, threads included) of ``action``."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


async def main(events: int, runs: int, base: Path) -> None:
    print(f"load average at start: {os.getloadavg()}; {os.cpu_count()} CPUs")
    encoded = synthetic(events)
    log = SqliteEventLog.from_url(f"sqlite:///{base}/events.db")
    await log.start()
    for start in range(0, len(encoded), 5000):
        await log.publish(ACTIVITY_TOPIC, [OutgoingMessage(k, v) for k, v in encoded[start : start + 5000]])
    records = await read_all(log, "bench-read")
    rows = as_dict_rows([r.value for r in records])
    print(f"{len(records):,} events ({len(rows):,} rows) on the SQLite log; {runs} runs")
    results: dict[str, list[float]] = defaultdict(list)
    for run in range(runs):
        for name in ("archive writer", "raw pyarrow", "archive end to end"):
            out = base / f"{name.replace(' ', '-')}-{run}"
            if name == "archive writer":
                seconds, cpu = timed(partial(archive_writer, records, out))
            elif name == "raw pyarrow":
                seconds, cpu = timed(partial(raw_pyarrow, rows, out))
            else:
                wall0, cpu0 = time.perf_counter(), time.process_time()
                archived = await catch_up(log, f"file://{out}", group=f"bench-{run}", settle_s=0.0)
                seconds, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
                assert archived == len(records), archived
            assert Lake(f"file://{out}").read().num_rows == len(rows)
            results[name].append(len(records) / seconds)
            results[f"{name} per CPU s"].append(len(records) / cpu)
            print(
                f"  run {run + 1} {name:<20} {len(records) / seconds:>10,.0f} events/s ({seconds:.2f} s wall,"
                f" {cpu:.2f} s CPU: {len(records) / cpu:,.0f} events per CPU second)"
            )
    await log.close()
    median = {name: statistics.median(rates) for name, rates in results.items()}
    print(f"load average before the summary: {os.getloadavg()}")
    writer_ratio = [a / b for a, b in zip(results["archive writer"], results["raw pyarrow"], strict=True)]
    e2e_ratio = [a / b for a, b in zip(results["archive end to end"], results["raw pyarrow"], strict=True)]
    print(f"medians over {runs} runs (events/s):")
    for name, value in median.items():
        print(f"  {name:<32} {value:>10,.0f}")
    print(
        f"archive writer / raw pyarrow: {statistics.median(writer_ratio):.2f}x "
        f"(per run {', '.join(f'{r:.2f}' for r in writer_ratio)}); target >= 0.5x"
    )
    print(
        f"archive end to end / raw pyarrow: {statistics.median(e2e_ratio):.2f}x "
        f"(per run {', '.join(f'{r:.2f}' for r in e2e_ratio)})"
    )


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="Work folder (default: a temporary one)")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="bench-archive-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(main(args.events, args.runs, base))
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    cli()
