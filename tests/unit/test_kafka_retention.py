"""The Kafka event log's retention alignment against a broker that refuses AlterConfigs: a clear warning,
never a failure to start (noida-db supports it: tests/contract/test_event_log.py runs it for real); and
its one offsets client, shared by concurrent lag reports."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from aiokafka.errors import UnsupportedVersionError
from structlog.testing import capture_logs

from kernel.eventlog import kafka_topics
from kernel.eventlog.kafka import KafkaEventLog
from kernel.eventlog.kafka_topics import align_retention
from kernel.eventlog.retention import Retention, RetentionPolicy

OLD = [("retention.ms", "3600000", False, 1, False, []), ("cleanup.policy", "delete", False, 1, False, [])]


class RefusingAdmin:
    def __init__(self, refusal: Exception | None) -> None:
        self.refusal = refusal
        self.altered: list[Any] = []

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        found = [(0, "", 2, r.name, OLD) for r in resources]
        return [SimpleNamespace(API_VERSION=2, resources=found)]

    async def alter_configs(self, resources: list[Any]) -> list[Any]:
        if self.refusal is not None:
            raise self.refusal
        self.altered += resources
        return [SimpleNamespace(resources=[(42, "not today", 2, r.name) for r in resources])]


@pytest.mark.parametrize(
    "refusal", [UnsupportedVersionError("AlterConfigs"), None], ids=["raises", "answers"]
)
async def test_a_refused_alteration_is_a_warning(
    refusal: Exception | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A logger an earlier test used is cached with the processors of the configuration then in force;
    # once the app configures logging again, capture_logs cannot reach it: log through a fresh one.
    monkeypatch.setattr(kafka_topics, "log", structlog.get_logger(kafka_topics.__name__))
    log = KafkaEventLog("127.0.0.1:1", retention=RetentionPolicy(bounded=Retention(7200.0, None)))
    admin = RefusingAdmin(refusal)
    with capture_logs() as logs:
        await align_retention(admin, ["activity"], log._configs)  # type: ignore[arg-type]
    (warning,) = [entry for entry in logs if entry["event"] == "eventlog.retention_not_altered"]
    assert warning["log_level"] == "warning" and "by hand" in warning["reason"]
    if refusal is None:  # the whole set of the topic's own settings was sent, retention replaced
        (sent,) = admin.altered
        assert sent.configs == {
            "retention.ms": "7200000",
            "retention.bytes": "-1",
            "cleanup.policy": "delete",
        }


class SlowOffsetsClient:
    """Stands in for aiokafka's consumer: starting takes a moment, as a broker round trip does."""

    made: list[SlowOffsetsClient] = []

    def __init__(self, **_: Any) -> None:
        self.started = self.stopped = False
        SlowOffsetsClient.made.append(self)

    async def start(self) -> None:
        await asyncio.sleep(0.01)
        self.started = True

    async def stop(self) -> None:
        self.stopped = True


async def test_concurrent_lag_reports_share_one_offsets_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every projector of a process reports its lag at the same moment: one offsets client, none leaked."""
    monkeypatch.setattr("kernel.eventlog.kafka.AIOKafkaConsumer", SlowOffsetsClient)
    SlowOffsetsClient.made.clear()
    log = KafkaEventLog("127.0.0.1:1")
    clients = await asyncio.gather(*(log._offsets_client() for _ in range(6)))
    assert len(SlowOffsetsClient.made) == 1 and all(c is clients[0] for c in clients)
    await log.close()
    assert SlowOffsetsClient.made[0].stopped
