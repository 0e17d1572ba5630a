"""An idle Kafka consumer on the local stack's broker (noida-db, which answers empty fetches at once):
with the stack's ``empty_fetch_wait_ms`` it fetches a few dozen times a second, not thousands, and a
record published meanwhile still arrives promptly."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from kernel.eventlog.kafka import KafkaEventLog
from kernel.eventlog.kafka_fetch import FETCH_API_KEY
from kernel.eventlog.port import OutgoingMessage

pytestmark = pytest.mark.cluster


def _count_fetches(consumer: Any) -> list[int]:
    """Count the fetch requests ``consumer``'s client sends from now on (wraps what is there)."""
    client = consumer._consumer._client  # what the fetcher sends
    send, counted = client.send, [0]

    async def counting(node_id: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(request, "API_KEY", None) == FETCH_API_KEY:
            counted[0] += 1
        return await send(node_id, request, *args, **kwargs)

    client.send = counting
    return counted


async def _idle_fetches_per_second(url: str, topic: str) -> tuple[float, float]:
    """Fetches per second of an idle consumer, and seconds until a record published then arrives."""
    log = KafkaEventLog.from_url(url, client_id="idle-fetch-test")
    await log.start()
    consumer = log.consumer([topic], f"idle-{uuid.uuid4().hex[:8]}", start_from="latest")
    await consumer.start()
    try:
        counted = _count_fetches(consumer)
        idle = asyncio.ensure_future(consumer.poll(100, 2.0))
        started = time.monotonic()
        assert await idle == []
        rate = counted[0] / (time.monotonic() - started)
        sent = time.monotonic()
        await log.publish(topic, [OutgoingMessage(key="k", value=b"v")])
        batch = await consumer.poll(100, 5.0)
        assert [r.value for r in batch] == [b"v"]
        return rate, time.monotonic() - sent
    finally:
        await consumer.stop()
        await log.close()


async def test_an_idle_consumer_fetches_a_few_times_a_second(kafka_url: str) -> None:
    topic = f"idle-{uuid.uuid4().hex[:8]}"
    assert "empty_fetch_wait_ms=" in kafka_url  # the local stack sets it for noida-db
    rate, arrival = await _idle_fetches_per_second(kafka_url, topic)
    assert rate < 100, f"{rate:.0f} fetches/s while idle"  # 3 partitions, one fetch per 50 ms at most
    assert arrival < 1.0
    bare = kafka_url.split("?")[0]
    busy, _ = await _idle_fetches_per_second(bare, topic)
    print(f"idle fetches/s: {rate:.0f} with the pause, {busy:.0f} without")
    assert busy > 5 * rate  # what the pause is for, on this broker
