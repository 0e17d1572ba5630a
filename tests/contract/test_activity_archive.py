"""Contract suite of the activity archive (analytics lake writer), run on every event-log adapter.

The archive must put every activity event in the lake exactly once, even when killed between writing a
file and committing its offsets; lay files out as ``activity/date=YYYY-MM-DD/hour=HH/``; write
``ACTIVITY_SCHEMA``; cope with an empty log; and refuse to read a corrupt Parquet file.
``event_log`` is the embedded SQLite log or Kafka (the local stack's broker, ``-m cluster``); every test
uses its own topic and consumer group.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest

from analytics.archive import Archiver, CorruptLakeFile, Lake, catch_up
from analytics.archive.lake import LIVE_FILE
from analytics.schema import ACTIVITY_SCHEMA, EVENT_TYPES
from kernel.contracts.events import (
    Envelope,
    Payload,
    ProductViewed,
    Purchased,
    PurchasedItem,
    SearchPerformed,
    encode_event,
    new_event,
)
from kernel.eventlog.kafka import KafkaEventLog
from kernel.eventlog.port import EventLog, OutgoingMessage
from kernel.eventlog.sqlite import SqliteEventLog

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 10, 15, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("kafka", marks=pytest.mark.cluster)])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/events.db"
    return str(request.getfixturevalue("kafka_url"))


def open_log(url: str) -> EventLog:
    if url.startswith("sqlite"):
        return SqliteEventLog.from_url(url)
    return KafkaEventLog.from_url(url, client_id="archive-contract")


@pytest.fixture
async def event_log(log_url: str) -> AsyncIterator[EventLog]:
    log = open_log(log_url)
    await log.start()
    try:
        yield log
    finally:
        await log.close()


@pytest.fixture
def names() -> tuple[str, str]:
    """A topic and a consumer group of this test alone."""
    tag = uuid.uuid4().hex[:10]
    return f"activity-{tag}", f"analytics.archive.{tag}"


def payload(n: int) -> Payload:
    if n % 3 == 0:
        return SearchPerformed(query=f"query {n % 7}", user_id=f"u{n % 5}", region="BLR")
    if n % 3 == 1:
        return ProductViewed(
            product_id=f"p{n % 11}", session_id=f"s{n % 4}", category="Home>Kitchen", brand="b"
        )
    item = PurchasedItem(
        product_id=f"p{n % 11}", sku=f"sup:{n % 11}", quantity=1 + n % 3, unit_price=Decimal("12.5")
    )
    return Purchased(order_id=f"o{n}", user_id=f"u{n % 5}", items=(item,), region="DEL")


def event(n: int, *, at: datetime | None = None) -> Envelope:
    envelope = new_event(payload(n), key=f"k{n % 6}", revision=1, producer="test")
    return msgspec.structs.replace(envelope, occurred_at=at or T0 + timedelta(minutes=n))


async def publish(log: EventLog, topic: str, events: list[Envelope]) -> None:
    for start in range(0, len(events), 500):
        batch = events[start : start + 500]
        await log.publish(topic, [OutgoingMessage(e.key, encode_event(e)) for e in batch])


def row_id(e: Envelope) -> str:
    return f"order:{e.payload.order_id}:0" if isinstance(e.payload, Purchased) else e.event_id


async def archive(log: EventLog, lake: Path, names: tuple[str, str], **options: object) -> int:
    topic, group = names
    return await catch_up(log, f"file://{lake}", topics=[topic], group=group, settle_s=0.5, **options)  # type: ignore[arg-type]


async def test_every_event_is_archived_once_with_the_schema_and_layout(
    event_log: EventLog, tmp_path: Path, names: tuple[str, str]
) -> None:
    events = [event(n) for n in range(300)]  # 10:15 to 15:14: five hours
    await publish(event_log, names[0], events)

    assert await archive(event_log, tmp_path / "lake", names) == 300
    table = Lake(f"file://{tmp_path}/lake").read()

    assert sorted(table["event_id"].to_pylist()) == sorted(row_id(e) for e in events)
    assert set(table["event_type"].to_pylist()) <= set(EVENT_TYPES)
    assert table.select(ACTIVITY_SCHEMA.names).schema.equals(ACTIVITY_SCHEMA)
    files = sorted((tmp_path / "lake" / "activity").rglob("*.parquet"))
    dirs = {f.parent.relative_to(tmp_path / "lake" / "activity").as_posix() for f in files}
    assert dirs == {f"date=2026-03-01/hour={h}" for h in ("10", "11", "12", "13", "14", "15")}
    for file in files:
        assert LIVE_FILE.match(file.name), file.name
        assert pq.read_schema(file).equals(ACTIVITY_SCHEMA)
        hour = int(file.parent.name.removeprefix("hour="))
        assert {t.hour for t in pq.read_table(file)["occurred_at"].to_pylist()} == {hour}

    # nothing new: nothing written
    assert await archive(event_log, tmp_path / "lake", names) == 0
    assert sorted((tmp_path / "lake" / "activity").rglob("*.parquet")) == files


async def test_an_empty_log_writes_nothing(
    event_log: EventLog, tmp_path: Path, names: tuple[str, str]
) -> None:
    assert await archive(event_log, tmp_path / "lake", names) == 0
    lake = Lake(f"file://{tmp_path}/lake")
    assert lake.parquet_files() == []
    assert lake.read().num_rows == 0


CRASHING_ARCHIVER = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from analytics.archive import Lake, catch_up
    from kernel.eventlog.kafka import KafkaEventLog
    from kernel.eventlog.sqlite import SqliteEventLog

    url, lake_url, topic, group, how = sys.argv[1:6]

    class KilledAfterWrite(Lake):
        def write_group(self, files):
            paths = super().write_group(files)
            # the files are durable, the offsets not committed
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise SystemExit(3)  # the consumer leaves its group on the way out, committing nothing

    import analytics.archive.consumer as consumer
    consumer.Lake = KilledAfterWrite

    async def main():
        log = SqliteEventLog.from_url(url) if url.startswith("sqlite") else KafkaEventLog.from_url(url)
        await log.start()
        await catch_up(log, lake_url, topics=[topic], group=group, max_rows=100)

    asyncio.run(main())
    """
)


async def test_killed_between_file_and_commit_duplicates_nothing(
    event_log: EventLog, log_url: str, tmp_path: Path, names: tuple[str, str]
) -> None:
    """SIGKILL on the SQLite log. On Kafka the process dies by an exception instead: a SIGKILLed member
    stays in its group until the broker expires it, and the local stack's Kafka (noida-db) did not within
    minutes, so the next member could not join; what matters, offsets not committed, is the same."""
    how = "kill" if log_url.startswith("sqlite") else "exit"
    topic, group = names
    events = [event(n) for n in range(400)]
    await publish(event_log, topic, events)
    lake_url = f"file://{tmp_path}/lake"

    crashed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", CRASHING_ARCHIVER, log_url, lake_url, topic, group, how],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=120,
    )
    assert crashed.returncode == (-9 if how == "kill" else 3), crashed.stderr.decode()[-2000:]
    written = Lake(lake_url).read()
    assert 0 < written.num_rows < 400  # one group made it to the lake, uncommitted

    await archive(event_log, tmp_path / "lake", names)

    ids = Lake(lake_url).read()["event_id"].to_pylist()
    assert Counter(ids).most_common(1)[0][1] == 1, "an event was archived twice"
    assert sorted(ids) == sorted(row_id(e) for e in events)


async def test_an_incomplete_group_is_rewritten_not_duplicated(
    event_log: EventLog, tmp_path: Path, names: tuple[str, str]
) -> None:
    """Killed between the renames of a group spanning two hours: one file of two in place."""
    topic, group = names
    events = [  # one key: one log partition; 10:15 .. 11:45: one group of two files
        msgspec.structs.replace(event(n, at=T0 + timedelta(minutes=30 * n)), key="one") for n in range(4)
    ]
    await publish(event_log, topic, events)
    lake_url = f"file://{tmp_path}/lake"

    class RenamesOnlyTheFirst(Lake):
        def write_group(self, files):  # type: ignore[no-untyped-def]
            paths = super().write_group(files)
            for path in paths[1:]:
                os.remove(path)
            raise RuntimeError("killed between renames")

    archiver = Archiver(event_log, RenamesOnlyTheFirst(lake_url), group=group, topics=[topic])
    consumer = await archiver.open()
    try:
        records: list = []
        while len(records) < 4:
            records += await consumer.poll(100, 1.0)
        archiver.take(records)
        with pytest.raises(RuntimeError):
            await archiver.flush(consumer)
    finally:
        await consumer.stop()
    assert len(Lake(lake_url).parquet_files()) >= 1

    assert await archive(event_log, tmp_path / "lake", names) == 4
    ids = Lake(lake_url).read()["event_id"].to_pylist()
    assert sorted(ids) == sorted(row_id(e) for e in events)


def truncate_to_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


async def test_a_corrupt_file_is_a_clear_error_never_skipped(
    event_log: EventLog, tmp_path: Path, names: tuple[str, str]
) -> None:
    await publish(event_log, names[0], [event(n) for n in range(30)])
    await archive(event_log, tmp_path / "lake", names)
    lake = Lake(f"file://{tmp_path}/lake")
    victim = Path(lake.parquet_files()[0])
    truncate_to_half(victim)  # no footer any more

    with pytest.raises(CorruptLakeFile) as caught:
        lake.read()
    assert str(victim) in str(caught.value)
    assert "not a readable Parquet file" in str(caught.value)


async def test_the_live_archiver_flushes_on_age_and_on_stop(
    event_log: EventLog, tmp_path: Path, names: tuple[str, str]
) -> None:
    topic, group = names
    lake_url = f"file://{tmp_path}/lake"
    archiver = Archiver(event_log, Lake(lake_url), group=group, topics=[topic], max_age_s=0.5)
    running = asyncio.create_task(archiver.run())
    await publish(event_log, topic, [event(n) for n in range(10)])
    for _ in range(200):
        if Lake(lake_url).parquet_files():
            break
        await asyncio.sleep(0.1)
    await publish(event_log, topic, [event(n) for n in range(10, 15)])
    await asyncio.sleep(0.2)
    archiver.stop()
    await asyncio.wait_for(running, 30)
    assert archiver.stats.events == 15
    assert Lake(lake_url).read().num_rows == 15
    assert await event_log.lag(topic, group) == 0


async def test_a_catch_up_beside_a_live_archiver_duplicates_and_loses_nothing(
    log_url: str, tmp_path: Path, names: tuple[str, str]
) -> None:
    """``analytics run`` catches up while ``serve`` archives in-process: two members of one group. The
    live member has buffered everything (no flush yet); the group hands some partitions to the catch-up,
    which archives them from the last commit, while the live member drops what it buffered for them.

    On Kafka with ``rebalance_wait_s=0``: noida-db rejects commits while a group prepares a rebalance
    and then fails to re-sync for minutes (``kernel/eventlog/kafka.py``)."""
    if log_url.startswith("kafka"):
        log_url += ("&" if "?" in log_url else "?") + "rebalance_wait_s=0"
    event_log = open_log(log_url)
    await event_log.start()
    try:
        await _catch_up_beside_a_live_archiver(event_log, tmp_path, names)
    finally:
        await event_log.close()


async def _catch_up_beside_a_live_archiver(
    event_log: EventLog, tmp_path: Path, names: tuple[str, str]
) -> None:
    topic, group = names
    lake_url = f"file://{tmp_path}/lake"
    first = [event(n) for n in range(200)]
    await publish(event_log, topic, first)
    live = Archiver(event_log, Lake(lake_url), group=group, topics=[topic], max_age_s=3600)
    running = asyncio.create_task(live.run())
    for _ in range(300):
        if live.stats.events + live._pending_events >= 200:
            break
        await asyncio.sleep(0.1)

    await archive(event_log, tmp_path / "lake", names)
    later = [event(n) for n in range(200, 300)]
    await publish(event_log, topic, later)
    await asyncio.sleep(1.0)
    live.stop()
    await asyncio.wait_for(running, 60)
    await archive(event_log, tmp_path / "lake", names)  # whatever the live member had not reached

    ids = Lake(lake_url).read()["event_id"].to_pylist()
    assert Counter(ids).most_common(1)[0][1] == 1, "an event was archived twice"
    assert sorted(ids) == sorted(row_id(e) for e in first + later)


def leave_leftovers(lake: Path, topic: str) -> tuple[Path, Path]:
    """A temporary file of the archive's (a crash mid-write) and one of a history import."""
    directory = lake / "activity" / "date=2026-03-01" / "hour=10"
    directory.mkdir(parents=True)
    ours = directory / f".{topic}.p0000.{0:020d}-{5:020d}.1of1.parquet.0a1b2c3d.tmp"
    theirs = directory / ".history.online_retail.abcdef.1of3.parquet.0a1b2c3d.tmp"
    for path in (ours, theirs):
        path.write_bytes(b"half a file")
    return ours, theirs


async def test_a_crashed_writers_temporary_files_go_and_no_one_elses(
    event_log: EventLog, tmp_path: Path, names: tuple[str, str]
) -> None:
    ours, theirs = leave_leftovers(tmp_path / "lake", names[0])
    await publish(event_log, names[0], [event(n, at=T0) for n in range(12)])
    assert await archive(event_log, tmp_path / "lake", names) == 12
    assert not ours.exists()  # its partition's owner cleaned it up
    assert theirs.exists()  # an import in progress is not the archive's to judge
    assert Lake(f"file://{tmp_path}/lake").read().num_rows == 12


async def test_catch_up_waits_for_what_a_serving_member_holds_buffered(
    log_url: str, tmp_path: Path, names: tuple[str, str]
) -> None:
    """``analytics run`` next to a running ``serve``: the serving member keeps its partitions while it
    buffers (up to its flush age), so catch_up must wait for it rather than return a lake without the
    newest events. Here the serving member flushes after 4 s and catch_up waits up to 8 s.

    On Kafka with ``rebalance_wait_s=0``, as in the test above (noida-db's slow re-syncs)."""
    if log_url.startswith("kafka"):
        log_url += ("&" if "?" in log_url else "?") + "rebalance_wait_s=0"
    event_log = open_log(log_url)
    await event_log.start()
    try:
        await _catch_up_beside_a_serving_member(event_log, tmp_path, names)
    finally:
        await event_log.close()


async def _catch_up_beside_a_serving_member(
    event_log: EventLog, tmp_path: Path, names: tuple[str, str]
) -> None:
    topic, group = names
    lake = Lake(f"file://{tmp_path}/lake")
    serving = Archiver(event_log, lake, group=group, topics=[topic], max_age_s=4.0)
    following = asyncio.create_task(serving.run())
    try:
        await asyncio.sleep(1.0)  # the serving member owns the partitions
        events = [event(n) for n in range(90)]
        await publish(event_log, topic, events)
        await asyncio.sleep(0.5)  # and has buffered them
        await catch_up(event_log, lake.url, topics=[topic], group=group, settle_s=0.5, wait_s=8.0)
        assert lake.read().num_rows == 90  # whoever wrote them, all are in the lake now
    finally:
        serving.stop()
        await asyncio.wait_for(following, 30)
