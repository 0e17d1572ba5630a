"""Recommendations read model: write (projection) and read throughput of each adapter vs a raw baseline.

    python -m loadtest.bench_recommendations [--cassandra-url URL] [--runs 3] [--users N] [--batch 1000]

* SQLite: the adapter's revision-conditional upsert in projector-sized batches vs a raw
  ``INSERT OR REPLACE`` (no revision check) of the same rows on the same disk; reads: ``get`` vs a raw
  single-row SELECT on its own connection.
* Cassandra (with --cassandra-url, e.g. from ``emporium services up cassandra``): the adapter's CAS writes
  (``INSERT IF NOT EXISTS`` for new users, then ``UPDATE IF revision = ?`` for a second revision: the
  projector's real mix) vs raw unconditional prepared INSERTs with the same concurrency; reads: ``get`` vs
  the raw driver's ``execute_async`` of the same prepared SELECT.

Each measurement runs ``--runs`` times; prints the median per second, the same-run baseline and the ratio.
Entries are synthetic (20 product ids per user, like an ALS top-20) and deterministic.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from emporium.adapters import RECOMMENDATIONS_STORE
from read_models.recommendations import Recommendations, RecommendationsStore

PER_USER = 20


def entries(users: int, revision: int, tag: str) -> list[Recommendations]:
    return [
        Recommendations(
            user_id=f"{tag}-{n}",
            product_ids=tuple(f"p{(n * 7 + r) % 9973}" for r in range(PER_USER)),
            model="als",
            revision=revision,
        )
        for n in range(users)
    ]


def batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def timed(count: int, fn: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await fn()
    return count / (time.perf_counter() - started)


def report(name: str, ours: list[float], base: list[float], baseline: str) -> None:
    mine, theirs = statistics.median(ours), statistics.median(base)
    print(
        f"{name:34} {mine:>10,.0f}/s   baseline {baseline:32} {theirs:>10,.0f}/s   ratio {mine / theirs:.2f}"
    )


async def store_writes(store: RecommendationsStore, users: int, batch: int, tag: str) -> float:
    """Two revisions per user (insert, then replace): what a nightly recompute projects."""
    first, second = entries(users, 1, tag), entries(users, 2, tag)

    async def run() -> None:
        for chunk in batches(first, batch) + batches(second, batch):
            await store.put_many(chunk)

    return await timed(2 * users, run)


async def store_reads(store: RecommendationsStore, users: int, tag: str, concurrency: int = 32) -> float:
    async def worker(offset: int) -> None:
        for n in range(offset, users, concurrency):
            await store.get(f"{tag}-{n}")

    return await timed(users, lambda: asyncio.gather(*(worker(i) for i in range(concurrency))))


async def bench_sqlite(runs: int, users: int, batch: int) -> None:
    ours_w, base_w, ours_r, base_r = [], [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            store = RECOMMENDATIONS_STORE.open(f"sqlite:///{Path(tmp) / 'recs.db'}")
            await store.start()
            ours_w.append(await store_writes(store, users, batch, "u"))
            ours_r.append(await store_reads(store, users, "u"))
            await store.close()
            base_w.append(raw_sqlite_writes(Path(tmp) / "raw.db", users, batch))
            base_r.append(raw_sqlite_reads(Path(tmp) / "raw.db", users))
    report("sqlite put_many (2 revisions)", ours_w, base_w, "raw INSERT OR REPLACE")
    report("sqlite get (32 concurrent)", ours_r, base_r, "raw SELECT, same thread")


def raw_sqlite_writes(path: Path, users: int, batch: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE r (user_id TEXT PRIMARY KEY, ids TEXT, model TEXT, revision INT) WITHOUT ROWID"
    )
    encode = msgspec.json.Encoder().encode
    rows = [
        (e.user_id, encode(e.product_ids), e.model, e.revision)
        for e in entries(users, 1, "u") + entries(users, 2, "u")
    ]
    started = time.perf_counter()
    for chunk in batches(rows, batch):
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR REPLACE INTO r VALUES (?, ?, ?, ?)", chunk)
    rate = len(rows) / (time.perf_counter() - started)
    conn.close()
    return rate


def raw_sqlite_reads(path: Path, users: int) -> float:
    conn = sqlite3.connect(path)
    started = time.perf_counter()
    for n in range(users):
        conn.execute("SELECT ids, model, revision FROM r WHERE user_id = ?", (f"u-{n}",)).fetchone()
    rate = users / (time.perf_counter() - started)
    conn.close()
    return rate


async def bench_cassandra(url: str, runs: int, users: int, batch: int) -> None:
    keyspace = f"bench_recs_{uuid.uuid4().hex[:10]}"
    url = urlunsplit(urlsplit(url)._replace(path=f"/{keyspace}"))
    store = RECOMMENDATIONS_STORE.open(url)
    await store.start()
    session: Any = store._session  # type: ignore[attr-defined]  # the baseline reuses the adapter's connection
    await asyncio.to_thread(
        session.execute,
        f"CREATE TABLE {keyspace}.raw (user_id text PRIMARY KEY, product_ids list<text>, model text, "
        "revision bigint)",
    )
    raw_insert = session.prepare(
        f"INSERT INTO {keyspace}.raw (user_id, product_ids, model, revision) VALUES (?, ?, ?, ?)"
    )
    raw_select = session.prepare(f"SELECT * FROM {keyspace}.recommendations WHERE user_id = ?")
    ours_w, base_w, ours_r, base_r = [], [], [], []
    try:
        for run in range(runs):
            tag = f"r{run}"
            ours_w.append(await store_writes(store, users, batch, tag))
            base_w.append(await raw_cassandra_writes(session, raw_insert, users, tag))
            ours_r.append(await store_reads(store, users, tag, concurrency=64))
            base_r.append(await raw_cassandra_reads(session, raw_select, users, tag))
        report("cassandra put_many (CAS, 2 revs)", ours_w, base_w, "raw INSERT, no LWT, 64 in flight")
        report("cassandra get (64 concurrent)", ours_r, base_r, "raw execute_async, 64 in flight")
    finally:
        await asyncio.to_thread(session.execute, f"DROP KEYSPACE {keyspace}")
        await store.close()


async def _bridge(session: Any, statement: Any, params: Sequence[Any]) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    future = session.execute_async(statement, params)
    future.add_callbacks(
        lambda _: loop.call_soon_threadsafe(done.set_result, None),
        lambda exc: loop.call_soon_threadsafe(done.set_exception, exc),
    )
    await done


async def _in_flight(session: Any, statement: Any, rows: Sequence[Sequence[Any]], limit: int = 64) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(row: Sequence[Any]) -> None:
        async with gate:
            await _bridge(session, statement, row)

    await asyncio.gather(*(one(row) for row in rows))


async def raw_cassandra_writes(session: Any, insert: Any, users: int, tag: str) -> float:
    rows = [
        (e.user_id, list(e.product_ids), e.model, e.revision)
        for e in entries(users, 1, tag) + entries(users, 2, tag)
    ]
    return await timed(len(rows), lambda: _in_flight(session, insert, rows))


async def raw_cassandra_reads(session: Any, select: Any, users: int, tag: str) -> float:
    rows = [(f"{tag}-{n}",) for n in range(users)]
    return await timed(users, lambda: _in_flight(session, select, rows))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cassandra-url", help="cassandra://HOST:PORT/KEYSPACE?protocol_version=3")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--users", type=int, default=20_000, help="users for SQLite (Cassandra uses 1/4)")
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    print(f"{args.users:,} users x {PER_USER} product ids, {args.runs} runs, batch {args.batch}; medians")
    asyncio.run(bench_sqlite(args.runs, args.users, args.batch))
    if args.cassandra_url:
        asyncio.run(bench_cassandra(args.cassandra_url, args.runs, max(args.users // 4, 1), args.batch))
    else:
        print("cassandra: skipped (pass --cassandra-url)")


if __name__ == "__main__":
    main()
