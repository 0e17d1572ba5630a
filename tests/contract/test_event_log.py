"""One contract suite for the event-log port, run against every adapter.

``event_log`` is parametrized over the embedded SQLite adapter (a file in tmp_path) and the Kafka
adapter (the broker from the ``kafka_url`` session fixture; never skipped), the latter also with a
``namespace`` (``kafka-ns``: every name on the broker prefixed, none visible above the adapter). Every
test uses its own topic and group names, so the tests never see each other's records.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from emporium.container import Container
from kernel.contracts.events import (
    ACTIVITY_TOPIC,
    CATALOG_TOPIC,
    ProductViewed,
    decode_dead_letter,
    encode_event,
    new_event,
)
from kernel.eventlog.kafka import KafkaEventLog
from kernel.eventlog.port import Consumer, EventLog, OutgoingMessage, Record
from kernel.eventlog.processing import ConsumedEvent, EventProcessor, publish_events
from kernel.eventlog.retention import KEEP_FOREVER, Retention, RetentionPolicy
from kernel.eventlog.sqlite import SqliteEventLog, partition_for
from kernel.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("kafka", marks=pytest.mark.cluster),
        pytest.param("kafka-ns", marks=pytest.mark.cluster),
    ]
)
async def event_log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventLog]:
    log: EventLog
    if request.param == "sqlite":
        log = SqliteEventLog.from_url(f"sqlite:///{tmp_path}/events.db")
    else:
        url = request.getfixturevalue("kafka_url")
        if request.param == "kafka-ns":
            url = f"{url}{'&' if '?' in url else '?'}namespace=contract"
        log = KafkaEventLog.from_url(url, client_id="contract-tests")
    await log.start()
    try:
        yield log
    finally:
        await log.close()


@pytest.fixture(params=["sqlite", pytest.param("kafka", marks=pytest.mark.cluster)])
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def messages(keys: int, per_key: int, *, pad: int = 0) -> list[OutgoingMessage]:
    """``per_key`` sequence-numbered messages for each of ``keys`` keys, interleaved."""
    filler = b"." * pad
    return [
        OutgoingMessage(f"k{k}", f"k{k}|{seq}|".encode() + filler)
        for seq in range(per_key)
        for k in range(keys)
    ]


def seq_of(record: Record) -> tuple[str, int]:
    key, seq, _ = record.value.split(b"|", 2)
    return key.decode(), int(seq)


async def drain(
    consumer: Consumer, count: int, *, within: float = 30.0, commit: bool = True, max_records: int = 1000
) -> list[Record]:
    """Poll (committing each batch) until ``count`` records arrived; fail with how many did."""
    out: list[Record] = []
    deadline = time.monotonic() + within
    while len(out) < count:
        assert time.monotonic() < deadline, f"received {len(out)} of {count} records in {within}s"
        batch = await consumer.poll(max_records, 0.5)
        out.extend(batch)
        if commit and batch:
            await consumer.commit()
    return out


async def assert_quiet(consumer: Consumer, wait: float = 1.0) -> None:
    extra = await consumer.poll(1000, wait)
    assert extra == [], f"unexpected extra records: {[seq_of(r) for r in extra][:10]}"


def assert_per_key_order(records: Sequence[Record], *, keys: int, per_key: int) -> None:
    seen: dict[str, list[int]] = defaultdict(list)
    for record in records:
        key, seq = seq_of(record)
        assert record.key == key
        seen[key].append(seq)
    assert len(seen) == keys
    for key, seqs in seen.items():
        assert seqs == list(range(per_key)), f"key {key} out of order or incomplete: {seqs[:20]}"


async def test_ping(event_log: EventLog) -> None:
    await event_log.ping()


async def test_order_per_key(event_log: EventLog) -> None:
    topic, group = unique("order"), unique("g")
    batch = messages(keys=7, per_key=60)
    for start in range(0, len(batch), 50):  # several publish calls, keys interleaved within each
        await event_log.publish(topic, batch[start : start + 50])
    consumer = event_log.consumer([topic], group)
    await consumer.start()
    try:
        records = await drain(consumer, len(batch), max_records=37)
        assert_per_key_order(records, keys=7, per_key=60)
        offsets: dict[int, list[int]] = defaultdict(list)
        for record in records:
            offsets[record.partition].append(record.offset)
        for partition, seen in offsets.items():
            assert seen == sorted(seen) and len(set(seen)) == len(seen), f"partition {partition}"
        await assert_quiet(consumer, 0.5)
    finally:
        await consumer.stop()


async def test_at_least_once_after_consumer_dies_before_commit(event_log: EventLog) -> None:
    topic, group = unique("alo"), unique("g")
    await event_log.publish(topic, messages(keys=5, per_key=8))
    first = event_log.consumer([topic], group)
    await first.start()
    committed = await drain(first, 1, max_records=10)  # processed and committed
    uncommitted = await drain(first, 1, max_records=10, commit=False)  # polled, never committed
    await first.stop()  # dies before committing the second batch

    second = event_log.consumer([topic], group)
    await second.start()
    try:
        rest = await drain(second, 40 - len(committed))
        got = {seq_of(r) for r in rest}
        assert {seq_of(r) for r in uncommitted} <= got, "uncommitted records must be delivered again"
        assert not got & {seq_of(r) for r in committed}, "committed records must not come back"
        assert got | {seq_of(r) for r in committed} == {(f"k{k}", s) for k in range(5) for s in range(8)}
        await assert_quiet(second, 0.5)
    finally:
        await second.stop()


async def test_resume_from_committed_offset(event_log: EventLog) -> None:
    topic, group = unique("resume"), unique("g")
    await event_log.publish(topic, messages(keys=3, per_key=10))
    first = event_log.consumer([topic], group)
    await first.start()
    await drain(first, 30)
    await first.stop()

    await event_log.publish(topic, [OutgoingMessage(f"k{k}", f"k{k}|{100 + k}|".encode()) for k in range(3)])
    second = event_log.consumer([topic], group)
    await second.start()
    try:
        rest = await drain(second, 3)
        assert sorted(seq_of(r) for r in rest) == [("k0", 100), ("k1", 101), ("k2", 102)]
        await assert_quiet(second, 0.5)
    finally:
        await second.stop()


async def test_two_groups_each_see_every_event(event_log: EventLog) -> None:
    topic = unique("groups")
    await event_log.publish(topic, messages(keys=4, per_key=25))
    a = event_log.consumer([topic], unique("ga"))
    b = event_log.consumer([topic], unique("gb"))
    await a.start()
    await b.start()
    try:
        got_a, got_b = await asyncio.gather(drain(a, 100), drain(b, 100))
        assert_per_key_order(got_a, keys=4, per_key=25)
        assert_per_key_order(got_b, keys=4, per_key=25)
    finally:
        await a.stop()
        await b.stop()


async def test_members_of_one_group_share_the_partitions(event_log: EventLog) -> None:
    topic, group = unique("share"), unique("g")
    await event_log.publish(topic, messages(keys=50, per_key=4))
    a = event_log.consumer([topic], group)
    b = event_log.consumer([topic], group)
    await a.start()
    await b.start()
    seen: dict[str, list[Record]] = {"a": [], "b": []}

    async def run(name: str, consumer: Consumer) -> None:
        deadline = time.monotonic() + 30
        while len(seen["a"]) + len(seen["b"]) < 200 and time.monotonic() < deadline:
            batch = await consumer.poll(20, 0.2)
            seen[name].extend(batch)
            if batch:
                await consumer.commit()

    try:
        await asyncio.gather(run("a", a), run("b", b))
        everything = seen["a"] + seen["b"]
        keys = {(r.topic, r.partition, r.offset) for r in everything}
        assert len(keys) == 200, f"missing records: got {len(keys)} distinct of 200"
        assert len(everything) == 200, "a clean run between two members delivers each record once"
        assert seen["a"] and seen["b"], "both members must get partitions"
    finally:
        await a.stop()
        await b.stop()


async def test_member_joining_mid_batch_loses_nothing(event_log: EventLog) -> None:
    """A member joins while another has a polled, uncommitted batch.

    SQLite hands partitions over at the batch boundary (the joiner waits for the commit), so nothing
    is read twice. Kafka does the same against a real broker (``rebalance_wait_s``), but the test
    broker, noida-db, rejects commits during a rebalance, so here the Kafka adapter hands over at
    once (``rebalance_wait_s=0``) and only the batch in flight may be read again.
    """
    exact = isinstance(event_log, SqliteEventLog)
    if isinstance(event_log, KafkaEventLog):
        event_log.rebalance_wait_s = 0
    topic, group = unique("rebalance"), unique("g")
    await event_log.publish(topic, messages(keys=50, per_key=4))
    a = event_log.consumer([topic], group)
    b = event_log.consumer([topic], group)
    await a.start()
    in_flight = await drain(a, 1, max_records=50, commit=False)
    joining = asyncio.create_task(b.start())
    if exact:
        await asyncio.sleep(0.5)
        assert not joining.done(), "the rebalance must wait for the batch in flight"
        await a.commit()
        await asyncio.wait_for(joining, 30)
    else:
        await asyncio.wait_for(joining, 30)
        await a.commit()  # its partitions were revoked meanwhile: nothing of them is committed
    seen: dict[str, list[Record]] = {"a": list(in_flight), "b": []}

    async def run(name: str, consumer: Consumer) -> None:
        deadline = time.monotonic() + 30
        while len({(r.partition, r.offset) for r in seen["a"] + seen["b"]}) < 200:
            assert time.monotonic() < deadline, "records lost across the rebalance"
            batch = await consumer.poll(20, 0.2)
            seen[name].extend(batch)
            if batch:
                await consumer.commit()

    try:
        await asyncio.gather(run("a", a), run("b", b))
        everything = seen["a"] + seen["b"]
        assert len({(r.partition, r.offset) for r in everything}) == 200
        assert seen["b"], "the new member got partitions"
        await asyncio.gather(assert_quiet(a, 0.5), assert_quiet(b, 0.5))
        repeated = len(everything) - 200
        if exact:
            assert repeated == 0, "no record is read twice across a clean rebalance"
        else:
            assert repeated <= len(in_flight), "only the batch in flight may be read again"
    finally:
        await a.stop()
        await b.stop()


async def test_replay_from_the_beginning(event_log: EventLog) -> None:
    topic, group = unique("replay"), unique("g")
    await event_log.publish(topic, messages(keys=3, per_key=20))
    consumer = event_log.consumer([topic], group)
    await consumer.start()
    try:
        await drain(consumer, 60)
        await assert_quiet(consumer, 0.3)
        await consumer.seek_to_beginning()
        again = await drain(consumer, 60)
        assert_per_key_order(again, keys=3, per_key=20)
        await assert_quiet(consumer, 0.5)
    finally:
        await consumer.stop()
    assert await event_log.lag(topic, group) == 0


async def test_start_from_latest_skips_history(event_log: EventLog) -> None:
    topic, group = unique("latest"), unique("g")
    await event_log.publish(topic, messages(keys=2, per_key=5))
    consumer = event_log.consumer([topic], group, start_from="latest")
    await consumer.start()
    try:
        await assert_quiet(consumer, 0.5)
        await event_log.publish(topic, [OutgoingMessage("k0", b"k0|99|"), OutgoingMessage("k1", b"k1|98|")])
        fresh = await drain(consumer, 2)
        assert sorted(seq_of(r) for r in fresh) == [("k0", 99), ("k1", 98)]
    finally:
        await consumer.stop()


async def test_lag_reporting(event_log: EventLog) -> None:
    topic, group = unique("lag"), unique("g")
    await event_log.publish(topic, messages(keys=6, per_key=5))
    assert await event_log.lag(topic, group) == 30, "a group that never committed lags by everything"
    consumer = event_log.consumer([topic], group)
    await consumer.start()
    try:
        first = await drain(consumer, 1, max_records=10, commit=False)
        assert await event_log.lag(topic, group) == 30, "polling alone does not move the committed offset"
        await consumer.commit()
        assert await event_log.lag(topic, group) == 30 - len(first)
        await drain(consumer, 30 - len(first))
        assert await event_log.lag(topic, group) == 0
        await event_log.publish(topic, [OutgoingMessage("k0", b"k0|5|")])
        assert await event_log.lag(topic, group) == 1
    finally:
        await consumer.stop()


def product_viewed(key: str, revision: int) -> bytes:
    return encode_event(
        new_event(ProductViewed(product_id=key), key=key, revision=revision, producer="contract-tests")
    )


POISON = [
    b"\xff\xfe definitely not json",
    b'{"event_id":"x","type":"catalog.no_such_event","occurred_at":"2024-01-01T00:00:00Z",'
    b'"key":"p1","revision":1,"producer":"t","payload":{}}',
    b'{"event_id":"x","type":"activity.product_viewed","occurred_at":"2024-01-01T00:00:00Z",'
    b'"key":"p1","revision":1,"producer":"t","payload":{"product_id":42}}',
]


async def test_poison_message_is_dead_lettered_and_consumer_goes_on(event_log: EventLog) -> None:
    topic, group, dlq = unique("poison"), unique("g"), unique("dead-letter")
    good = [OutgoingMessage("p1", product_viewed("p1", rev)) for rev in range(1, 4)]
    await event_log.publish(topic, good[:1] + [OutgoingMessage("p1", bad) for bad in POISON] + good[1:])

    handled: list[ConsumedEvent] = []

    async def handler(batch: Sequence[ConsumedEvent]) -> None:
        handled.extend(batch)

    processor = EventProcessor(event_log, [topic], group, handler, batch_size=2, dead_letter_topic=dlq)
    task = asyncio.create_task(processor.run())
    try:
        deadline = time.monotonic() + 30
        while processor.stats.processed < 3 or processor.stats.dead_lettered < 3:
            assert time.monotonic() < deadline, f"stuck: {processor.stats}"
            assert not task.done(), "the processor must not stop on a poison message"
            await asyncio.sleep(0.05)
    finally:
        processor.stop()
        await task
    assert [e.event.revision for e in handled] == [1, 2, 3]
    assert all(e.record.topic == topic and e.record.key == "p1" for e in handled)
    assert await event_log.lag(topic, group) == 0

    inspector = event_log.consumer([dlq], unique("dlq-reader"))
    await inspector.start()
    try:
        letters = [decode_dead_letter(r.value) for r in await drain(inspector, 3)]
    finally:
        await inspector.stop()
    assert [base64.b64decode(d.value_b64) for d in letters] == POISON
    assert [d.offset for d in letters] == [1, 2, 3]  # all keyed p1: one partition, offsets 0..5
    assert {(d.topic, d.key, d.group) for d in letters} == {(topic, "p1", group)}
    assert "bad envelope" in letters[0].reason
    assert "unknown event type 'catalog.no_such_event'" in letters[1].reason
    assert "bad payload for activity.product_viewed" in letters[2].reason


async def test_failing_handler_is_retried_and_nothing_committed_meanwhile(event_log: EventLog) -> None:
    topic, group = unique("retry"), unique("g")
    await event_log.publish(topic, [OutgoingMessage(f"p{i}", product_viewed(f"p{i}", 1)) for i in range(5)])
    calls: list[int] = []
    lag_while_failing: list[int] = []

    async def flaky(batch: Sequence[ConsumedEvent]) -> None:
        calls.append(len(batch))
        if len(calls) <= 2:
            lag_while_failing.append(await event_log.lag(topic, group))
            raise RuntimeError("read model unavailable")

    processor = EventProcessor(event_log, [topic], group, flaky, batch_size=100, retry_initial_s=0.01)
    task = asyncio.create_task(processor.run())
    try:
        deadline = time.monotonic() + 30
        while processor.stats.processed < 5:
            assert time.monotonic() < deadline, f"stuck: {processor.stats}"
            await asyncio.sleep(0.05)
    finally:
        processor.stop()
        await task
    assert processor.stats.handler_failures == 2
    assert lag_while_failing == [5, 5]
    assert await event_log.lag(topic, group) == 0
    assert calls[0] == calls[1] == calls[2], "the same batch is retried"


async def test_publish_events_routes_envelopes_by_topic(event_log: EventLog) -> None:
    from kernel.contracts.events import ACTIVITY_TOPIC, INVENTORY_TOPIC, StockLevelChanged

    events = [
        new_event(ProductViewed(product_id="p1"), key="p1", revision=1, producer="t"),
        new_event(
            StockLevelChanged(sku="s1", on_hand=3, held=0, sold=0, available=3, in_stock=True),
            key="s1",
            revision=1,
            producer="t",
        ),
    ]
    group = unique("g")
    before = {t: await event_log.lag(t, group) for t in (ACTIVITY_TOPIC, INVENTORY_TOPIC)}
    await publish_events(event_log, events)
    after = {t: await event_log.lag(t, group) for t in (ACTIVITY_TOPIC, INVENTORY_TOPIC)}
    assert after[ACTIVITY_TOPIC] - before[ACTIVITY_TOPIC] == 1
    assert after[INVENTORY_TOPIC] - before[INVENTORY_TOPIC] == 1


@pytest.mark.slow
async def test_100k_event_round_trip(event_log: EventLog) -> None:
    topic, group = unique("bulk"), unique("g")
    keys, per_key = 1000, 100
    batch = messages(keys=keys, per_key=per_key, pad=180)
    started = time.monotonic()
    for start in range(0, len(batch), 10_000):
        await event_log.publish(topic, batch[start : start + 10_000])
    consumer = event_log.consumer([topic], group)
    await consumer.start()
    try:
        records = await drain(consumer, len(batch), within=60, max_records=5000)
        await assert_quiet(consumer, 0.5)
    finally:
        await consumer.stop()
    assert len({(r.partition, r.offset) for r in records}) == len(batch), "duplicates in a clean run"
    assert_per_key_order(records, keys=keys, per_key=per_key)
    assert await event_log.lag(topic, group) == 0
    assert time.monotonic() - started < 60


async def test_retention_by_topic(tmp_path: Path, request: pytest.FixtureRequest, adapter: str) -> None:
    """Topics nobody replays get the retention of the settings; the ones read models are rebuilt from
    (and the catalog by name) are kept forever."""
    bounded, kept = unique("activity"), unique("catalog")
    policy = RetentionPolicy(
        bounded=Retention(3600.0, 5 * 1024 * 1024), kept=frozenset({kept, CATALOG_TOPIC})
    )
    log: EventLog
    if adapter == "sqlite":
        log = SqliteEventLog.from_url(f"sqlite:///{tmp_path}/events.db", retention=policy)
    else:
        log = KafkaEventLog.from_url(
            request.getfixturevalue("kafka_url"), client_id="contract-tests", retention=policy
        )
    await log.start()
    try:
        await log.publish(bounded, messages(keys=2, per_key=3))
        await log.publish(kept, messages(keys=2, per_key=3))
        assert await log.retention_of(bounded) == Retention(3600.0, 5 * 1024 * 1024)
        assert await log.retention_of(kept) == KEEP_FOREVER
        assert await log.retention_of(CATALOG_TOPIC) == KEEP_FOREVER
    finally:
        await log.close()


# Embedded adapter only: restarts, several processes on one file, stable partitioning -------------


async def test_sqlite_is_durable_across_restarts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/events.db"
    log = SqliteEventLog.from_url(url)
    await log.start()
    await log.publish("t", messages(keys=2, per_key=10))
    consumer = log.consumer(["t"], "g")
    await consumer.start()
    first = await drain(consumer, 12, max_records=12)
    await consumer.stop()
    await log.close()

    reopened = SqliteEventLog.from_url(url)
    await reopened.start()
    try:
        assert await reopened.lag("t", "g") == 8
        consumer = reopened.consumer(["t"], "g")
        await consumer.start()
        rest = await drain(consumer, 8)
        assert {seq_of(r) for r in first + rest} == {(f"k{k}", s) for k in range(2) for s in range(10)}
        await reopened.publish("t", [OutgoingMessage("k0", b"k0|10|")])
        (new,) = await drain(consumer, 1)
        await consumer.stop()
        # offsets continue after a restart instead of starting over
        assert new.offset == sum(1 for r in first + rest if r.partition == new.partition)
    finally:
        await reopened.close()


async def test_sqlite_other_process_publishes_while_this_one_consumes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/events.db"
    log = SqliteEventLog.from_url(url)
    await log.start()
    consumer = log.consumer(["t"], "g")
    await consumer.start()
    script = (
        "import asyncio\n"
        "from kernel.eventlog.sqlite import SqliteEventLog\n"
        "from kernel.eventlog.port import OutgoingMessage\n"
        "async def main():\n"
        f"    log = SqliteEventLog.from_url({url!r})\n"
        "    await log.start()\n"
        "    for b in range(20):\n"
        "        batch = [OutgoingMessage(f'k{k}', f'k{k}|{b}|'.encode()) for k in range(50)]\n"
        "        await log.publish('t', batch)\n"
        "    await log.close()\n"
        "asyncio.run(main())\n"
    )
    writer = await asyncio.create_subprocess_exec(sys.executable, "-c", script, cwd=ROOT)
    try:
        records = await drain(consumer, 1000, within=60)
        assert_per_key_order(records, keys=50, per_key=20)
    finally:
        assert await asyncio.wait_for(writer.wait(), 60) == 0
        await consumer.stop()
        await log.close()


async def test_sqlite_idle_consumer_sees_its_topic_behind_a_busy_other_topic(tmp_path: Path) -> None:
    """An idle consumer skips the records of topics it does not read without missing its own, also
    when they come from another process (no in-process wake-up) between bursts of another topic."""
    url = f"sqlite:///{tmp_path}/events.db"
    here, other = SqliteEventLog.from_url(url), SqliteEventLog.from_url(url)
    await here.start()
    await other.start()
    consumer = here.consumer(["quiet"], "g")
    await consumer.start()
    try:
        assert await consumer.poll(timeout=0.05) == []
        for round_no in range(5):
            for _ in range(3):
                await here.publish("busy", [OutgoingMessage("k", b"noise") for _ in range(20)])
                assert await consumer.poll(timeout=0.01) == []
            await other.publish("quiet", [OutgoingMessage("k", b"%d" % round_no)])
            await here.publish("busy", [OutgoingMessage("k", b"noise")])
            records = await consumer.poll(timeout=2.0)
            assert [r.value for r in records] == [b"%d" % round_no]
    finally:
        await consumer.stop()
        await here.close()
        await other.close()


def test_sqlite_partitioning_is_stable() -> None:
    # crc32, not Python's per-process salted hash(): every process and restart agrees.
    assert partition_for("a", 4) == 0xE8B7BE43 % 4
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from kernel.eventlog.sqlite import partition_for as p; print(p('sku-1', 8))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(out.stdout) == partition_for("sku-1", 8)


def test_sqlite_url_forms(tmp_path: Path) -> None:
    assert SqliteEventLog.from_url("sqlite:///.emporium/events.db").path == Path(".emporium/events.db")
    assert SqliteEventLog.from_url(f"sqlite:///{tmp_path}/e.db").path == tmp_path / "e.db"
    tuned = SqliteEventLog.from_url("sqlite:///x.db?partitions=8&synchronous=full")
    assert (tuned.partitions, tuned.synchronous) == (8, "FULL")
    with pytest.raises(ValueError):
        SqliteEventLog.from_url("sqlite://")


async def test_sqlite_partitions_of_a_crashed_member_move_on_after_the_session_timeout(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/events.db"
    log = SqliteEventLog(tmp_path / "events.db", session_timeout_s=1.5, heartbeat_interval_s=0.2)
    await log.start()
    await log.publish("t", messages(keys=20, per_key=5))
    script = (
        "import asyncio, os\n"
        "from kernel.eventlog.sqlite import SqliteEventLog\n"
        "async def main():\n"
        f"    log = SqliteEventLog.from_url({url!r})\n"
        "    consumer = log.consumer(['t'], 'g')\n"
        "    await consumer.start()\n"
        "    records = await consumer.poll(1000, 5.0)\n"
        "    print(len(records), flush=True)\n"
        "    os._exit(3)  # crash: no commit, no leave\n"
        "asyncio.run(main())\n"
    )
    crashed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(crashed.communicate(), 60)
    assert crashed.returncode == 3 and int(out.splitlines()[-1]) == 100

    survivor = log.consumer(["t"], "g")
    started = time.monotonic()
    await survivor.start()  # waits for the dead member's heartbeat to expire, then takes over
    try:
        assert len(survivor.assignment) == log.partitions
        assert time.monotonic() - started < 10
        records = await drain(survivor, 100)
        assert_per_key_order(records, keys=20, per_key=5)
    finally:
        await survivor.stop()
        await log.close()


async def test_sqlite_drops_what_falls_out_of_retention_and_keeps_offsets_going(tmp_path: Path) -> None:
    bounded, kept = "activity", "catalog"
    policy = RetentionPolicy(bounded=Retention(max_age_s=1.0), kept=frozenset({kept}))
    log = SqliteEventLog(tmp_path / "events.db", partitions=1, retention=policy, prune_interval_s=0)
    await log.start()
    try:
        await log.publish(bounded, messages(keys=3, per_key=100))
        await log.publish(kept, messages(keys=3, per_key=100))
        consumer = log.consumer([bounded], "slow")  # commits nothing: it falls behind the retention
        await consumer.start()
        await consumer.stop()
        await asyncio.sleep(1.2)
        await log.publish(bounded, [OutgoingMessage("k0", b"k0|100|")])  # prunes what is older than 1 s
        reader = log.consumer([bounded, kept], "late")
        await reader.start()
        records = await drain(reader, 1 + 300)
        await assert_quiet(reader, 0.3)
        await reader.stop()
        assert Counter(r.topic for r in records) == {kept: 300, bounded: 1}
        assert [r.offset for r in records if r.topic == bounded] == [300]  # offsets go on
        assert await log.lag(bounded, "slow") == 1  # not the 301 records it never read
    finally:
        await log.close()


async def test_sqlite_keeps_each_partition_under_its_size(tmp_path: Path) -> None:
    policy = RetentionPolicy(bounded=Retention(max_bytes=20_000), kept=frozenset())
    log = SqliteEventLog(tmp_path / "events.db", partitions=2, retention=policy, prune_interval_s=0)
    await log.start()
    try:
        for _ in range(20):  # 2,000 records of about 210 bytes: ~210 kB per partition
            await log.publish("activity", messages(keys=10, per_key=10, pad=200)[:100])
        reader = log.consumer(["activity"], "g")
        await reader.start()
        records = await drain(reader, 150, commit=False)
        await assert_quiet(reader, 0.3)
        await reader.stop()
        for partition in range(2):
            size = sum(len(r.value) + len(r.key or "") for r in records if r.partition == partition)
            assert 15_000 < size <= 20_000, (partition, size)
    finally:
        await log.close()


async def test_the_settings_give_the_activity_topic_its_retention(tmp_path: Path) -> None:
    settings = load_settings(
        env={}, data_dir=str(tmp_path), event_log_retention_s=600, event_log_retention_bytes=0
    )
    container = Container(settings)
    log = container.event_log()
    async with container:
        assert await log.retention_of(ACTIVITY_TOPIC) == Retention(max_age_s=600.0)
        assert await log.retention_of(CATALOG_TOPIC) == KEEP_FOREVER


async def test_kafka_gives_an_existing_topic_the_configured_retention(kafka_url: str) -> None:
    """A topic that exists with another retention (an older setting, or made by hand) gets the configured
    one when the log first uses it; its other topic-level settings stay as they were."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    bounded, kept = unique("activity"), unique("catalog")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_url.split("://", 1)[1].split("?")[0])
    await admin.start()
    try:
        old = {"retention.ms": "3600000", "retention.bytes": "1000", "max.message.bytes": "2000000"}
        await admin.create_topics([NewTopic(t, 1, 1, topic_configs=old) for t in (bounded, kept)])
        policy = RetentionPolicy(bounded=Retention(7200.0, 10 * 1024 * 1024), kept=frozenset({kept}))
        log = KafkaEventLog.from_url(kafka_url, client_id="contract-tests", retention=policy)
        await log.start()
        try:
            await log.publish(bounded, messages(keys=1, per_key=1))
            await log.publish(kept, messages(keys=1, per_key=1))
            assert await log.retention_of(bounded) == Retention(7200.0, 10 * 1024 * 1024)
            assert await log.retention_of(kept) == KEEP_FOREVER
        finally:
            await log.close()
        described = await admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, t, {"max.message.bytes": None})
                for t in (bounded, kept)
            ]
        )
        kept_values = [entry[1] for r in described for resource in r.resources for entry in resource[4]]
        assert kept_values == ["2000000", "2000000"]
    finally:
        await admin.close()
