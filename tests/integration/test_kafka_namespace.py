"""Two deployments on one broker, namespaces ``a`` and ``b``: the same logical topic and group names,
yet each reads only its own events, keeps its own committed offsets, and sees logical names only."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from kernel.eventlog.kafka import KafkaEventLog
from kernel.eventlog.port import Consumer, OutgoingMessage, Record
from kernel.eventlog.retention import KEEP_FOREVER, Retention, RetentionPolicy

pytestmark = pytest.mark.cluster


def with_namespace(url: str, namespace: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}namespace={namespace}"


async def drain(consumer: Consumer, count: int, within: float = 30.0) -> list[Record]:
    """Poll and commit until ``count`` records arrived, then make sure no more come."""
    out: list[Record] = []
    deadline = time.monotonic() + within
    while len(out) < count:
        assert time.monotonic() < deadline, f"received {len(out)} of {count} records in {within}s"
        batch = await consumer.poll(100, 0.5)
        out.extend(batch)
        if batch:
            await consumer.commit()
    assert await consumer.poll(100, 1.0) == [], "records of the other namespace leaked in"
    return out


@pytest.fixture
async def admin(kafka_url: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_url.split("://", 1)[1].split("?")[0])
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def test_two_namespaces_share_a_broker(kafka_url: str, admin: AIOKafkaAdminClient) -> None:
    run = uuid.uuid4().hex[:8]
    topic, group = f"orders-{run}", f"projector-{run}"
    logs = {ns: KafkaEventLog.from_url(with_namespace(kafka_url, ns), client_id="ns-test") for ns in "ab"}
    try:
        for ns, count in (("a", 3), ("b", 2)):
            await logs[ns].start()
            await logs[ns].publish(
                topic, [OutgoingMessage(f"k{i}", f"{ns}{i}".encode()) for i in range(count)]
            )
        assert (await logs["a"].lag(topic, group), await logs["b"].lag(topic, group)) == (3, 2)

        consumer = logs["a"].consumer([topic], group)
        await consumer.start()
        try:
            records = await drain(consumer, 3)
            assert {t for t, _ in consumer.assignment} == {topic}
        finally:
            await consumer.stop()
        assert sorted(r.value for r in records) == [b"a0", b"a1", b"a2"]
        assert {r.topic for r in records} == {topic}, "Record.topic is the logical name"
        assert (await logs["a"].lag(topic, group), await logs["b"].lag(topic, group)) == (0, 2)

        consumer = logs["b"].consumer([topic], group)
        await consumer.start()
        try:
            records = await drain(consumer, 2)
        finally:
            await consumer.stop()
        assert sorted(r.value for r in records) == [b"b0", b"b1"]
        assert {r.topic for r in records} == {topic}
        assert (await logs["a"].lag(topic, group), await logs["b"].lag(topic, group)) == (0, 0)
    finally:
        for log in logs.values():
            await log.close()

    names = set(await admin.list_topics())
    assert {f"a.{topic}", f"b.{topic}"} <= names
    assert topic not in names, "nothing is created under the bare logical name"
    for ns, count in (("a", 3), ("b", 2)):
        committed = await admin.list_consumer_group_offsets(f"{ns}.{group}")
        assert sum(o.offset for o in committed.values() if o.offset > 0) == count


async def test_retention_goes_by_the_logical_name(kafka_url: str, admin: AIOKafkaAdminClient) -> None:
    """The policy names logical topics; an existing namespaced topic is aligned to it as well."""
    run = uuid.uuid4().hex[:8]
    bounded, kept, existing = f"activity-{run}", f"catalog-{run}", f"history-{run}"
    await admin.create_topics([NewTopic(f"a.{existing}", 1, 1, topic_configs={"retention.ms": "3600000"})])
    policy = RetentionPolicy(bounded=Retention(7200.0, 10 * 1024 * 1024), kept=frozenset({kept, existing}))
    log = KafkaEventLog.from_url(with_namespace(kafka_url, "a"), client_id="ns-test", retention=policy)
    await log.start()
    try:
        assert await log.retention_of(bounded) == Retention(7200.0, 10 * 1024 * 1024)
        assert await log.retention_of(kept) == KEEP_FOREVER
        assert await log.retention_of(existing) == KEEP_FOREVER
    finally:
        await log.close()
    assert {f"a.{bounded}", f"a.{kept}"} <= set(await admin.list_topics())
