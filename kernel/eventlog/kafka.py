"""Cluster event log: Kafka through aiokafka, using only documented client APIs.

* Producer: idempotent, ``acks=all``, batches filled during ``linger_ms``. ``publish`` appends every
  message to the accumulator, then waits for all delivery futures, so it returns only when the whole
  batch is acknowledged by the in-sync replicas. Keys go through the default (murmur2) partitioner,
  which keeps per-key order; idempotence keeps that order across retries.
* Topics are created on demand with the admin client (partition count and replication configurable),
  with ``retention.ms`` / ``retention.bytes`` from the retention policy (``kernel.eventlog.retention``:
  -1, kept forever, for the topics read models are rebuilt from). A topic that already exists with
  another retention is altered to it the first time this log uses it (``alter_configs``; its other
  topic-level settings are sent back unchanged, since AlterConfigs replaces the whole set); a broker
  that refuses is logged as a warning, and the topic keeps its retention.
* Consumers never auto-commit. ``commit`` stores the positions reached by the records returned by
  ``poll``. On a rebalance the revoke callback waits (bounded) until the batch in flight is committed,
  so a partition changes owner only at a batch boundary: no record is skipped and, in a clean run,
  none is read twice. If the batch is not committed in time, the new owner reads it again
  (at-least-once). ``rebalance_wait_s=0`` hands partitions over at once instead (the batch in flight
  is then re-read by the new owner): use it with brokers that reject commits while a group prepares
  a rebalance. noida-db 0.2.3 does (IllegalGeneration), and its group then fails to re-sync for a
  long time, so keep ``rebalance_wait_s=0`` when several members of one group run against it.
* ``namespace=NS`` lets deployments share a broker: every topic is ``NS.<topic>`` on the broker and every
  consumer group ``NS.<group>``. The mapping lives here only: callers, ``Record.topic``, ``assignment``
  and the retention policy see logical names (docs/adr/0011-kafka-namespace.md).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError, TopicAlreadyExistsError

from kernel.eventlog.kafka_fetch import pause_empty_fetches
from kernel.eventlog.kafka_topics import align_retention
from kernel.eventlog.port import OutgoingMessage, Record, consumer_topics
from kernel.eventlog.retention import KEEP_ALL, Retention, RetentionPolicy

log = structlog.get_logger(__name__)

POLL_GRACE_S = 5.0  # past a poll's own timeout, how long getmany may take before the poll gives up

DEFAULT_PARTITIONS = 3  # enough to spread a projector group over a few processes on a dev cluster
_TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno

MAX_TOPIC_NAME = 249  # Kafka's limit on a topic name
TOPIC_ROOM = 64  # of those, kept for the logical topic name after a namespace and its '.'
MAX_NAMESPACE = MAX_TOPIC_NAME - TOPIC_ROOM - 1
_LEGAL_NAME = re.compile(r"[A-Za-z0-9._-]+")


def check_namespace(namespace: str) -> str:
    """Refuse a namespace Kafka could not use as a topic-name prefix (at start, not at the first publish)."""
    if not namespace:
        raise ValueError("kafka namespace must not be empty (leave the option out for no namespace)")
    if not _LEGAL_NAME.fullmatch(namespace):
        raise ValueError(
            f"kafka namespace {namespace!r} may contain only ASCII letters, digits, '.', '_' and '-'"
        )
    if len(namespace) > MAX_NAMESPACE:
        raise ValueError(
            f"kafka namespace {namespace!r} is {len(namespace)} characters, at most {MAX_NAMESPACE} "
            f"(topic names are at most {MAX_TOPIC_NAME}, {TOPIC_ROOM} of them kept for the topic)"
        )
    return namespace


def parse_kafka_url(url: str) -> tuple[str, dict[str, str]]:
    """``kafka://host:port[,host:port][?partitions=N&replication=R&linger_ms=M&compression=lz4
    &rebalance_wait_s=S&empty_fetch_wait_ms=W&namespace=NS]`` (``kernel.eventlog.kafka_fetch`` for
    ``empty_fetch_wait_ms``). ``namespace`` prefixes every topic and consumer group on the broker with
    ``NS.`` so deployments can share it; it is checked here (``ValueError``), not at first use."""
    parts = urlsplit(url)
    if parts.scheme != "kafka":
        raise ValueError(f"not a kafka URL: {url!r}")
    if not parts.netloc:
        raise ValueError(f"kafka URL needs host:port, got {url!r}")
    # Blank values are kept only for the namespace: ``namespace=`` is a mistake, not "no namespace".
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    if "namespace" in query:
        check_namespace(query["namespace"])
    return parts.netloc, {k: v for k, v in query.items() if v or k == "namespace"}


class KafkaEventLog:
    """The cluster adapter of :class:`kernel.eventlog.port.EventLog`."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "emporium",
        partitions: int = DEFAULT_PARTITIONS,
        replication_factor: int = 1,
        linger_ms: int = 5,
        max_batch_size: int = 512 * 1024,
        compression_type: str | None = None,
        request_timeout_ms: int = 30_000,
        rebalance_wait_s: float = 10.0,
        join_timeout_s: float = 30.0,
        retention: RetentionPolicy = KEEP_ALL,
        empty_fetch_wait_ms: int = 0,
        namespace: str | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.linger_ms = linger_ms
        self.max_batch_size = max_batch_size
        self.compression_type = compression_type
        self.request_timeout_ms = request_timeout_ms
        self.rebalance_wait_s = rebalance_wait_s
        self.join_timeout_s = join_timeout_s
        self.retention = retention
        self.empty_fetch_wait_ms = empty_fetch_wait_ms
        self.namespace = None if namespace is None else check_namespace(namespace)
        self._prefix = "" if namespace is None else f"{namespace}."
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None  # group-less client for end/begin offsets
        self._known_topics: set[str] = set()
        self._start_lock = asyncio.Lock()
        self._offsets_lock = asyncio.Lock()  # one offsets client, however many lag() calls race to make it
        self._topic_lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, *, client_id: str = "emporium", **options: Any) -> KafkaEventLog:
        servers, query = parse_kafka_url(url)
        kwargs: dict[str, Any] = {}
        if "partitions" in query:
            kwargs["partitions"] = int(query["partitions"])
        if "replication" in query:
            kwargs["replication_factor"] = int(query["replication"])
        if "linger_ms" in query:
            kwargs["linger_ms"] = int(query["linger_ms"])
        if "compression" in query:
            kwargs["compression_type"] = query["compression"]
        if "rebalance_wait_s" in query:
            kwargs["rebalance_wait_s"] = float(query["rebalance_wait_s"])
        if "empty_fetch_wait_ms" in query:
            kwargs["empty_fetch_wait_ms"] = int(query["empty_fetch_wait_ms"])
        if "namespace" in query:
            kwargs["namespace"] = query["namespace"]
        return cls(servers, client_id=client_id, **kwargs, **options)

    # names: logical above this adapter, namespaced on the broker --------------------------------

    def physical_topic(self, topic: str) -> str:
        """The broker's name for logical ``topic``."""
        name = self._prefix + topic
        if len(name) > MAX_TOPIC_NAME:
            raise ValueError(f"kafka topic name {name!r} is longer than {MAX_TOPIC_NAME} characters")
        return name

    def logical_topic(self, name: str) -> str:
        """The logical name of the broker's topic ``name`` (one of this namespace's)."""
        return name[len(self._prefix) :] if self._prefix and name.startswith(self._prefix) else name

    def physical_group(self, group: str) -> str:
        """The broker's consumer-group id for logical ``group``."""
        return self._prefix + group

    def client_id_for(self, role: str = "") -> str:
        """A client id (the namespace in it, so broker logs and quotas tell deployments apart)."""
        return f"{self._prefix}{self.client_id}{'-' + role if role else ''}"

    # lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        async with self._start_lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(
                    bootstrap_servers=self.bootstrap_servers,
                    client_id=self.client_id_for("admin"),
                    request_timeout_ms=self.request_timeout_ms,
                )
                await admin.start()
                self._admin = admin
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    client_id=self.client_id_for(),
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=self.linger_ms,
                    max_batch_size=self.max_batch_size,
                    compression_type=self.compression_type,
                    request_timeout_ms=self.request_timeout_ms,
                )
                await producer.start()
                self._producer = producer

    async def close(self) -> None:
        """Flush and stop the producer, then the helper clients; safe to call twice."""
        producer, self._producer = self._producer, None
        offsets, self._offsets = self._offsets, None
        admin, self._admin = self._admin, None
        if producer is not None:
            await producer.stop()
        if offsets is not None:
            await offsets.stop()
        if admin is not None:
            await admin.close()

    async def ping(self) -> None:
        await self.start()
        assert self._admin is not None
        await asyncio.wait_for(self._admin.list_topics(), timeout=self.request_timeout_ms / 1000)

    # topics ------------------------------------------------------------------------------------

    async def ensure_topics(self, topics: Iterable[str]) -> None:
        """Create missing topics; one that already exists (or is created concurrently) is fine."""
        missing = [t for t in dict.fromkeys(topics) if t not in self._known_topics]
        if not missing:
            return
        await self.start()
        assert self._admin is not None
        async with self._topic_lock:
            missing = [t for t in missing if t not in self._known_topics]
            if not missing:
                return
            names = {t: self.physical_topic(t) for t in missing}
            existing = set(await self._admin.list_topics())
            to_create = [t for t in missing if names[t] not in existing]
            found = [names[t] for t in missing if names[t] in existing]
            await align_retention(self._admin, found, lambda name: self._configs(self.logical_topic(name)))
            if to_create:
                response = await self._admin.create_topics(
                    [
                        NewTopic(
                            names[t], self.partitions, self.replication_factor, topic_configs=self._configs(t)
                        )
                        for t in to_create
                    ]
                )
                for error in response.topic_errors:
                    name, code = error[0], error[1]
                    if code not in (0, _TOPIC_ALREADY_EXISTS):
                        message = error[2] if len(error) > 2 else ""
                        raise KafkaError(f"cannot create topic {name!r}: error {code} {message}")
                created = [names[t] for t in to_create]
                log.info("eventlog.topics_created", topics=created, partitions=self.partitions)
            self._known_topics.update(missing)

    def _configs(self, topic: str) -> dict[str, str]:
        """The settings logical ``topic`` is created with (its retention, by its logical name)."""
        retention = self.retention.of(topic)
        age, size = retention.max_age_s, retention.max_bytes
        return {
            "retention.ms": "-1" if age is None else str(int(age * 1000)),
            "retention.bytes": "-1" if size is None else str(size),
        }

    async def retention_of(self, topic: str) -> Retention:
        """The retention the brokers apply to ``topic`` (its described configuration)."""
        await self.ensure_topics([topic])
        assert self._admin is not None
        wanted = {"retention.ms": None, "retention.bytes": None}
        responses = await self._admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, self.physical_topic(topic), wanted)]
        )
        values: dict[str, str] = {}
        for response in responses:
            for resource in response.resources:
                error_code, error_message, entries = resource[0], resource[1], resource[4]
                if error_code:
                    raise KafkaError(f"cannot describe topic {topic!r}: error {error_code} {error_message}")
                values.update({entry[0]: entry[1] for entry in entries})
        age, size = int(values.get("retention.ms") or -1), int(values.get("retention.bytes") or -1)
        return Retention(None if age < 0 else age / 1000, None if size < 0 else size)

    async def _partitions(self, topic: str) -> list[TopicPartition]:
        """The broker's partitions (physical names) of logical ``topic``."""
        await self.ensure_topics([topic])
        assert self._admin is not None
        name = self.physical_topic(topic)
        for _ in range(50):  # a new topic's metadata can take a moment to reach every broker
            described = await self._admin.describe_topics([name])
            for entry in described:
                if entry.get("topic") == name and entry.get("partitions"):
                    ids = sorted(p.get("partition", p.get("partition_index")) for p in entry["partitions"])
                    return [TopicPartition(name, int(i)) for i in ids]
            await asyncio.sleep(0.1)
        raise KafkaError(f"topic {topic!r} has no partition metadata")

    # publishing --------------------------------------------------------------------------------

    async def publish(self, topic: str, messages: Sequence[OutgoingMessage]) -> None:
        if not messages:
            return
        await self.ensure_topics([topic])
        producer = self._producer
        if producer is None:
            raise RuntimeError("event log is closed")
        send, name = producer.send, self.physical_topic(topic)
        # ``send`` only appends to the accumulator (waiting if it is full); the futures resolve on ack.
        futures = [await send(name, value=m.value, key=m.key.encode()) for m in messages]
        await asyncio.gather(*futures)

    # consuming ---------------------------------------------------------------------------------

    def consumer(
        self,
        topics: Sequence[str],
        group: str,
        *,
        start_from: Literal["earliest", "latest"] = "earliest",
    ) -> KafkaConsumer:
        return KafkaConsumer(self, topics, group, start_from=start_from)

    async def _offsets_client(self) -> AIOKafkaConsumer:
        """The shared group-less client. Made under a lock: every projector's lag report starts at the
        same moment, and each one making its own left all but one open (``Unclosed AIOKafkaConsumer``)."""
        async with self._offsets_lock:
            if self._offsets is None:
                client = AIOKafkaConsumer(
                    bootstrap_servers=self.bootstrap_servers,
                    client_id=self.client_id_for("offsets"),
                    group_id=None,
                    enable_auto_commit=False,
                    request_timeout_ms=self.request_timeout_ms,
                )
                await client.start()
                self._offsets = client
            return self._offsets

    async def lag(self, topic: str, group: str) -> int:
        """End offsets minus the group's committed offsets (earliest retained when never committed)."""
        partitions = await self._partitions(topic)
        assert self._admin is not None
        committed = await self._admin.list_consumer_group_offsets(
            self.physical_group(group), partitions=partitions
        )
        client = await self._offsets_client()
        ends = await client.end_offsets(partitions)
        uncommitted = [tp for tp in partitions if tp not in committed or committed[tp].offset < 0]
        begins = await client.beginning_offsets(uncommitted) if uncommitted else {}
        total = 0
        for tp in partitions:
            start = begins[tp] if tp in begins else committed[tp].offset
            total += max(0, ends[tp] - start)
        return total


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    def __init__(self, owner: KafkaConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._owner._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._owner._on_assigned(set(assigned))


class KafkaConsumer:
    """A consumer-group member; see the module docstring for commit and rebalance rules."""

    def __init__(
        self,
        log: KafkaEventLog,
        topics: Sequence[str],
        group: str,
        *,
        start_from: Literal["earliest", "latest"] = "earliest",
    ) -> None:
        self.topics = consumer_topics(topics, start_from)
        self._log = log
        self.group = group
        self.start_from = start_from
        self._consumer: AIOKafkaConsumer | None = None
        self._polled: dict[TopicPartition, int] = {}  # next offsets after the last poll, to commit
        self._settled = asyncio.Event()  # set while no polled batch awaits its commit
        self._settled.set()
        self._assigned = asyncio.Event()
        self._replay_pending = False

    @property
    def assignment(self) -> frozenset[tuple[str, int]]:
        if self._consumer is None:
            return frozenset()
        logical = self._log.logical_topic
        return frozenset((logical(tp.topic), tp.partition) for tp in self._consumer.assignment())

    async def start(self) -> None:
        await self._log.ensure_topics(self.topics)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._log.bootstrap_servers,
            client_id=self._log.client_id_for(self.group),
            group_id=self._log.physical_group(self.group),
            enable_auto_commit=False,
            auto_offset_reset=self.start_from,
            request_timeout_ms=self._log.request_timeout_ms,
            # Learn about a rebalance within a second, so a joining member is not kept waiting.
            heartbeat_interval_ms=1000,
            session_timeout_ms=10_000,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
        )
        consumer.subscribe([self._log.physical_topic(t) for t in self.topics], listener=_Rebalance(self))
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        pause_empty_fetches(consumer, self._log.empty_fetch_wait_ms)
        self._consumer = consumer
        # Wait for the first assignment so "latest" means "from now" and tests are deterministic.
        try:
            await asyncio.wait_for(self._assigned.wait(), timeout=self._log.join_timeout_s)
        except TimeoutError:
            log.warning("eventlog.no_assignment_yet", group=self.group, topics=self.topics)

    async def stop(self) -> None:
        """Leave the group without committing: uncommitted records go to the next owner."""
        consumer, self._consumer = self._consumer, None
        self._polled.clear()
        self._settled.set()
        if consumer is not None:
            await consumer.stop()

    def _require(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("consumer is not started (call start()) or already stopped")
        return self._consumer

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Called by aiokafka before a rebalance; fetching has stopped, the batch in flight may not."""
        in_flight = not self._settled.is_set() and bool(self._polled.keys() & revoked)
        wait = self._log.rebalance_wait_s
        if in_flight and wait > 0:
            # Let the batch in flight finish and commit (Kafka accepts commits of the current
            # generation while the group prepares the rebalance) before the partitions move on.
            try:
                await asyncio.wait_for(self._settled.wait(), timeout=wait)
            except TimeoutError:
                log.warning(
                    "eventlog.rebalance_uncommitted",
                    group=self.group,
                    reason="batch not committed in time; the next owner re-reads it",
                )
        elif in_flight:
            log.info(
                "eventlog.rebalance_handover",
                group=self.group,
                reason="in-flight batch re-read by next owner",
            )
        # Positions of revoked partitions are never committed by this member after this point.
        for tp in revoked:
            self._polled.pop(tp, None)
        if not self._polled:
            self._settled.set()

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._replay_pending and assigned and self._consumer is not None:
            await self._consumer.seek_to_beginning(*assigned)
        self._assigned.set()

    async def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:  # noqa: ASYNC109
        consumer = self._require()
        timeout_ms = max(0, int(timeout * 1000))
        try:
            # aiokafka's getmany ignores its timeout while the member has no partitions (a group stuck
            # rebalancing): bound it, so a poll returns and a stopping consumer can stop.
            batches = await asyncio.wait_for(
                consumer.getmany(timeout_ms=timeout_ms, max_records=max_records), timeout + POLL_GRACE_S
            )
        except TimeoutError:
            return []
        if consumer.assignment():
            self._replay_pending = False
        records: list[Record] = []
        for tp, messages in batches.items():
            if not messages:
                continue
            topic = self._log.logical_topic(tp.topic)  # projectors route by the logical name
            records.extend(
                Record(
                    topic,
                    m.partition,
                    m.offset,
                    m.key.decode("utf-8", "backslashreplace") if m.key is not None else None,
                    m.value if m.value is not None else b"",
                    m.timestamp,
                )
                for m in messages
            )
            self._polled[tp] = messages[-1].offset + 1
        if records:
            self._settled.clear()
        return records

    async def commit(self) -> None:
        consumer = self._require()
        assignment = consumer.assignment()
        offsets = {tp: off for tp, off in self._polled.items() if tp in assignment}
        try:
            if offsets:
                await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # Not retryable: the partitions moved. Other KafkaErrors propagate and keep the positions.
            log.warning(
                "eventlog.commit_failed",
                group=self.group,
                error=str(exc),
                reason="the group rebalanced; the new owner re-reads these records",
            )
        for tp, off in offsets.items():
            if self._polled.get(tp) == off:
                del self._polled[tp]
        for tp in [tp for tp in self._polled if tp not in assignment]:
            del self._polled[tp]
        if not self._polled:
            self._settled.set()

    async def seek_to_beginning(self) -> None:
        consumer = self._require()
        self._replay_pending = True
        self._polled.clear()
        self._settled.set()
        assignment = consumer.assignment()
        if assignment:
            await consumer.seek_to_beginning(*assignment)


__all__ = ["KafkaConsumer", "KafkaEventLog", "parse_kafka_url"]
