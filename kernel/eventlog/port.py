"""Port definitions; adapters implement these Protocols and pass tests/contract/test_event_log.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple, Protocol

import msgspec

from kernel.eventlog.retention import Retention


class OutgoingMessage(NamedTuple):
    key: str
    value: bytes


class Record(msgspec.Struct, frozen=True, gc=False):
    """One consumed message and where it sits in the log (untracked by the cyclic GC: it holds only
    immutable values, and consumers keep many of them)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    timestamp_ms: int


class Consumer(Protocol):
    """A member of a consumer group. Positions advance on poll; only ``commit`` makes them durable."""

    async def start(self) -> None: ...

    @property
    def assignment(self) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs this member owns now; ownership changes only within ``poll``
        (and, on Kafka, in a rebalance, which first waits a while for the batch in flight to commit)."""
        ...

    async def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:  # noqa: ASYNC109
        """Next records (possibly none after ``timeout`` seconds), in order within each partition."""
        ...

    async def commit(self) -> None:
        """Durably record that everything polled so far is processed."""
        ...

    async def seek_to_beginning(self) -> None:
        """Replay: the next poll starts from the first retained record of every partition."""
        ...

    async def stop(self) -> None: ...


class EventLog(Protocol):
    async def start(self) -> None: ...

    async def publish(self, topic: str, messages: Sequence[OutgoingMessage]) -> None:
        """Append durably (acked by all replicas) before returning. Order is kept per key."""
        ...

    def consumer(
        self,
        topics: Sequence[str],
        group: str,
        *,
        start_from: Literal["earliest", "latest"] = "earliest",
    ) -> Consumer:
        """A consumer in ``group``; with no committed offset it starts at ``start_from``."""
        ...

    async def lag(self, topic: str, group: str) -> int:
        """Records in ``topic`` not yet committed by ``group``."""
        ...

    async def retention_of(self, topic: str) -> Retention:
        """How long ``topic`` keeps its records (``kernel.eventlog.retention``), as the log applies it."""
        ...

    async def ping(self) -> None:
        """Raise if the log cannot be reached (readiness check)."""
        ...

    async def close(self) -> None: ...


def consumer_topics(topics: Sequence[str], start_from: str) -> tuple[str, ...]:
    """Check a consumer's arguments the same way in every adapter; the topics, de-duplicated in order."""
    if not topics:
        raise ValueError("a consumer needs at least one topic")
    if start_from not in ("earliest", "latest"):
        raise ValueError("start_from must be 'earliest' or 'latest'")
    return tuple(dict.fromkeys(topics))
