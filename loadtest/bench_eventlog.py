"""Event-log throughput: 100k events of ~500 bytes published, then consumed, per adapter.

    python -m loadtest.bench_eventlog [--kafka-url kafka://HOST:PORT] [--events 100000] [--runs 3]

Each run measures, on fresh topics and in alternating order:

* SQLite adapter (publish batches through ``SqliteEventLog.publish``; consume with a group consumer,
  committing every batch) against the same-run baseline of plain ``sqlite3`` on the same pragmas
  (``executemany`` into one table; one indexed range scan), both on a file in a temp dir.
* Kafka adapter against raw aiokafka on the same broker: the raw producer has the adapter's settings
  (idempotent, ``acks=all``, same linger and batch size) and sends the same batches with
  ``send`` + ``gather``; the raw consumer uses ``getmany`` and commits every batch, like the adapter.

Prints medians, the baseline and the ratio. Without ``--kafka-url`` (or EMPORIUM_EVENT_LOG_URL=kafka://)
a throw-away noida-db is started through infra.local.stack.LocalStack and stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.local.stack import LocalStack
from kernel.eventlog.kafka import KafkaEventLog, parse_kafka_url
from kernel.eventlog.port import EventLog, OutgoingMessage
from kernel.eventlog.sqlite import SqliteEventLog
from kernel.observability import configure_logging

PUBLISH_BATCH = 1000
POLL_BATCH = 5000


def make_messages(count: int, size: int, keys: int = 10_000) -> list[OutgoingMessage]:
    """``count`` messages of ``size`` bytes each (a JSON-ish body, like an encoded envelope)."""
    out = []
    for i in range(count):
        head = f'{{"event_id":"{i:032x}","key":"sku-{i % keys}","revision":{i},"payload":"'.encode()
        out.append(OutgoingMessage(f"sku-{i % keys}", head + b"x" * max(0, size - len(head) - 2) + b'"}'))
    return out


async def timed(action: Callable[[], Awaitable[int]]) -> float:
    """Events per second of ``action`` (which returns how many events it handled)."""
    started = time.perf_counter()
    count = await action()
    return count / (time.perf_counter() - started)


# adapter (either) ------------------------------------------------------------------------------


async def adapter_publish(log: EventLog, topic: str, messages: list[OutgoingMessage]) -> int:
    for start in range(0, len(messages), PUBLISH_BATCH):
        await log.publish(topic, messages[start : start + PUBLISH_BATCH])
    return len(messages)


async def adapter_consume(log: EventLog, topic: str, expected: int) -> float:
    consumer = log.consumer([topic], f"bench-{uuid.uuid4().hex[:8]}")
    await consumer.start()  # group join is not part of the throughput
    try:
        received = 0
        started = time.perf_counter()
        while received < expected:
            batch = await consumer.poll(POLL_BATCH, 5.0)
            if not batch:
                raise RuntimeError(f"adapter consumer stalled at {received}/{expected}")
            received += len(batch)
            await consumer.commit()
        return received / (time.perf_counter() - started)
    finally:
        await consumer.stop()


# sqlite baseline -------------------------------------------------------------------------------


def raw_sqlite(path: Path, messages: list[OutgoingMessage]) -> tuple[float, float]:
    """Plain sqlite3: the same rows in batches of PUBLISH_BATCH, then read back in POLL_BATCH pages."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, key TEXT, value BLOB NOT NULL)")
    started = time.perf_counter()
    for start in range(0, len(messages), PUBLISH_BATCH):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO log (key, value) VALUES (?, ?)",
            [(m.key, m.value) for m in messages[start : start + PUBLISH_BATCH]],
        )
        conn.execute("COMMIT")
    publish = len(messages) / (time.perf_counter() - started)
    started = time.perf_counter()
    last, received = 0, 0
    while received < len(messages):
        rows = conn.execute(
            "SELECT id, key, value FROM log WHERE id > ? ORDER BY id LIMIT ?", (last, POLL_BATCH)
        ).fetchall()
        received += len(rows)
        last = rows[-1][0]
    consume = received / (time.perf_counter() - started)
    conn.close()
    return publish, consume


async def bench_sqlite(messages: list[OutgoingMessage], workdir: Path) -> dict[str, float]:
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    raw_publish, raw_consume = await asyncio.to_thread(raw_sqlite, run_dir / "raw.db", messages)
    log = SqliteEventLog(run_dir / "events.db")
    await log.start()
    try:
        publish = await timed(lambda: adapter_publish(log, "bench", messages))
        consume = await adapter_consume(log, "bench", len(messages))
    finally:
        await log.close()
    return {"publish": publish, "consume": consume, "raw_publish": raw_publish, "raw_consume": raw_consume}


# kafka baseline --------------------------------------------------------------------------------


async def raw_kafka_publish(
    servers: str, log: KafkaEventLog, topic: str, messages: list[OutgoingMessage]
) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=log.linger_ms,
        max_batch_size=log.max_batch_size,
    )
    await producer.start()
    try:
        started = time.perf_counter()
        for start in range(0, len(messages), PUBLISH_BATCH):
            futures = [
                await producer.send(topic, value=m.value, key=m.key.encode())
                for m in messages[start : start + PUBLISH_BATCH]
            ]
            await asyncio.gather(*futures)
        return len(messages) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def raw_kafka_consume(servers: str, topic: str, expected: int) -> float:
    assigned = asyncio.Event()

    class _Joined(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked: object) -> None:
            return None

        async def on_partitions_assigned(self, assigned_tps: object) -> None:
            assigned.set()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    consumer.subscribe([topic], listener=_Joined())
    await consumer.start()
    try:
        await asyncio.wait_for(assigned.wait(), 30)  # join the group before timing, as the adapter does
        received = 0
        started = time.perf_counter()
        while received < expected:
            batches = await consumer.getmany(timeout_ms=5000, max_records=POLL_BATCH)
            if not batches:
                raise RuntimeError(f"raw consumer stalled at {received}/{expected}")
            received += sum(len(b) for b in batches.values())
            await consumer.commit()
        return received / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def bench_kafka(messages: list[OutgoingMessage], url: str) -> dict[str, float]:
    servers, _ = parse_kafka_url(url)
    log = KafkaEventLog.from_url(url, client_id="bench")
    await log.start()
    try:
        raw_topic, adapter_topic = f"bench-raw-{uuid.uuid4().hex[:8]}", f"bench-ad-{uuid.uuid4().hex[:8]}"
        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(raw_topic, log.partitions, log.replication_factor)])
        finally:
            await admin.close()
        await log.ensure_topics([adapter_topic])
        raw_publish = await raw_kafka_publish(servers, log, raw_topic, messages)
        publish = await timed(lambda: adapter_publish(log, adapter_topic, messages))
        raw_consume = await raw_kafka_consume(servers, raw_topic, len(messages))
        consume = await adapter_consume(log, adapter_topic, len(messages))
    finally:
        await log.close()
    return {"publish": publish, "consume": consume, "raw_publish": raw_publish, "raw_consume": raw_consume}


# driver ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def kafka_broker(url: str | None) -> Iterator[str]:
    given = url or os.environ.get("EMPORIUM_EVENT_LOG_URL", "")
    if given.startswith("kafka://"):
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="bench-eventlog-") as base:
        stack = LocalStack(Path(base))
        try:
            print("starting a throw-away noida-db (Kafka) through infra.local.stack ...", file=sys.stderr)
            yield stack.ensure("kafka")
        finally:
            stack.stop_all()


def report(title: str, results: list[dict[str, float]], baseline: str, target: str) -> None:
    """Medians over runs; the ratio is the median of per-run ratios (each against its own baseline)."""
    print(f"\n{title} ({len(results)} runs, median events/s)")
    print(f"{'direction':<10} {'adapter':>12} {baseline:>22} {'ratio':>7}   target")
    for way in ("publish", "consume"):
        adapter = statistics.median(r[way] for r in results)
        raw = statistics.median(r[f"raw_{way}"] for r in results)
        ratio = statistics.median(r[way] / r[f"raw_{way}"] for r in results)
        print(f"{way:<10} {adapter:>12,.0f} {raw:>22,.0f} {ratio:>7.2f}   {target}")


async def main_async(args: argparse.Namespace) -> None:
    messages = make_messages(args.events, args.size)
    print(f"{len(messages):,} events of {len(messages[0].value)} bytes, {args.runs} runs", file=sys.stderr)
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory(prefix="bench-eventlog-") as workdir:
            sqlite_runs = []
            for run in range(args.runs):
                sqlite_runs.append(await bench_sqlite(messages, Path(workdir)))
                print(f"sqlite run {run + 1}: {sqlite_runs[-1]}", file=sys.stderr)
        report("SQLite adapter", sqlite_runs, "raw sqlite3 baseline", ">= 20,000 events/s each way")
    if not args.skip_kafka:
        with kafka_broker(args.kafka_url) as url:
            kafka_runs = []
            for run in range(args.runs):
                kafka_runs.append(await bench_kafka(messages, url))
                print(f"kafka run {run + 1}: {kafka_runs[-1]}", file=sys.stderr)
        report(f"Kafka adapter ({url})", kafka_runs, "raw aiokafka baseline", "ratio >= 0.50")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kafka-url", help="kafka://HOST:PORT; default: start noida-db")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=500, help="bytes per event")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-kafka", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("warning", "console")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
