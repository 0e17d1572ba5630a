"""A pause after an empty fetch, for brokers that do not hold fetch requests.

A Kafka broker keeps a fetch that finds no records open for up to ``fetch_max_wait_ms`` (a long poll),
so an idle consumer asks a few times a second. noida-db 0.2.3, the local stack's Kafka, answers at once
instead: an idle aiokafka consumer then sends about 5,000 fetches a second and burns most of a core
(measured in docs/BENCHMARKS.md), in every worker and projector. With ``empty_fetch_wait_ms`` (a Kafka URL
option, off by default) a fetch answered with no records sooner than that is followed by a pause up to
that time: the long poll, done by the client. Against a real broker it never triggers, since an empty
answer comes only after the broker's own wait.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer

FETCH_API_KEY = 1  # the Kafka protocol's Fetch request


def _has_records(response: Any) -> bool:
    for _topic, partitions in response.topics:
        for _partition, _error, _highwater, *part_data in partitions:
            if part_data and part_data[-1]:  # the message set, last in every version
                return True
    return False


def pause_empty_fetches(consumer: AIOKafkaConsumer, wait_ms: int) -> None:
    """Make ``consumer``'s empty fetches take at least ``wait_ms`` (a started consumer's client; the
    hook is aiokafka's client ``send``, through which its fetcher sends every request)."""
    if wait_ms <= 0:
        return
    client = consumer._client  # aiokafka has no public hook for this
    send = client.send
    floor_s = wait_ms / 1000

    async def send_then_wait_if_empty(node_id: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        response = await send(node_id, request, *args, **kwargs)
        if getattr(request, "API_KEY", None) == FETCH_API_KEY and not _has_records(response):
            left = floor_s - (time.monotonic() - started)
            if left > 0:
                await asyncio.sleep(left)
        return response

    client.send = send_then_wait_if_empty
