"""The Kafka event-log URL: its options, and the ``namespace`` that lets deployments share a broker
(checked when the URL is parsed, so a bad one fails at start, not at the first publish)."""

from __future__ import annotations

import pytest

from kernel.eventlog.kafka import MAX_NAMESPACE, MAX_TOPIC_NAME, KafkaEventLog, parse_kafka_url


def test_options_are_parsed() -> None:
    servers, query = parse_kafka_url(
        "kafka://h1:9092,h2:9092?partitions=8&empty_fetch_wait_ms=50&namespace=a"
    )
    assert servers == "h1:9092,h2:9092"
    assert query == {"partitions": "8", "empty_fetch_wait_ms": "50", "namespace": "a"}
    log = KafkaEventLog.from_url("kafka://h:9092?partitions=8&rebalance_wait_s=0&namespace=shop-eu")
    assert (log.partitions, log.rebalance_wait_s, log.namespace) == (8, 0.0, "shop-eu")


def test_without_a_namespace_names_are_as_before() -> None:
    log = KafkaEventLog.from_url("kafka://h:9092", client_id="api")
    assert log.namespace is None
    assert log.physical_topic("catalog") == "catalog"
    assert log.logical_topic("catalog") == "catalog"
    assert log.physical_group("read-models.search") == "read-models.search"
    assert (log.client_id_for(), log.client_id_for("admin")) == ("api", "api-admin")


def test_a_namespace_prefixes_topics_groups_and_client_ids() -> None:
    log = KafkaEventLog.from_url("kafka://h:9092?namespace=shop.eu_1", client_id="api")
    assert log.physical_topic("catalog") == "shop.eu_1.catalog"
    assert log.logical_topic("shop.eu_1.catalog") == "catalog"
    assert log.physical_group("read-models.search") == "shop.eu_1.read-models.search"
    assert log.client_id_for("offsets") == "shop.eu_1.api-offsets"


def test_a_blank_option_other_than_namespace_is_ignored_as_before() -> None:
    assert parse_kafka_url("kafka://h:9092?partitions=")[1] == {}


@pytest.mark.parametrize(
    ("namespace", "message"),
    [
        ("", "must not be empty"),
        ("shop eu", "may contain only"),
        ("shop/eu", "may contain only"),
        ("shöp", "may contain only"),
        ("x" * (MAX_NAMESPACE + 1), f"at most {MAX_NAMESPACE}"),
    ],
)
def test_a_bad_namespace_is_refused_at_parse_time(namespace: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_kafka_url(f"kafka://h:9092?namespace={namespace}")
    with pytest.raises(ValueError, match=message):
        KafkaEventLog("h:9092", namespace=namespace)


def test_the_longest_namespace_leaves_room_for_topic_names() -> None:
    log = KafkaEventLog.from_url(f"kafka://h:9092?namespace={'x' * MAX_NAMESPACE}")
    assert len(log.physical_topic("recommendations")) < MAX_TOPIC_NAME
    with pytest.raises(ValueError, match="longer than 249"):
        log.physical_topic("t" * (MAX_TOPIC_NAME - MAX_NAMESPACE))
