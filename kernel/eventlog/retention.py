"""How long the event log keeps a topic's records: by age and by size, per topic.

Topics that a read model is rebuilt from by replay (catalog, commerce, inventory, logistics, recommendations)
are kept forever: dropping their old records would lose products and stock on the next rebuild. The
others (storefront activity, dead letters) carry no state anyone replays, and anonymous searches
append to them without bound, so they keep ``Settings.event_log_retention_s`` and
``Settings.event_log_retention_bytes`` (per partition, as Kafka counts ``retention.bytes``).

The SQLite log deletes what falls out (``kernel.eventlog.sqlite.retention``); the Kafka log creates
its topics with ``retention.ms`` / ``retention.bytes`` and the brokers delete.
"""

from __future__ import annotations

from typing import Final

import msgspec

from kernel.contracts.events import (
    CATALOG_TOPIC,
    COMMERCE_TOPIC,
    INVENTORY_TOPIC,
    LOGISTICS_TOPIC,
    RECOMMENDATIONS_TOPIC,
    TRENDING_TOPIC,
)

REPLAYED_TOPICS: Final = frozenset(
    {CATALOG_TOPIC, COMMERCE_TOPIC, INVENTORY_TOPIC, LOGISTICS_TOPIC, RECOMMENDATIONS_TOPIC, TRENDING_TOPIC}
)


class Retention(msgspec.Struct, frozen=True):
    """Records older than ``max_age_s``, and the oldest past ``max_bytes`` per partition, are dropped
    (None: no limit)."""

    max_age_s: float | None = None
    max_bytes: int | None = None

    @property
    def forever(self) -> bool:
        return self.max_age_s is None and self.max_bytes is None


KEEP_FOREVER: Final = Retention()


class RetentionPolicy(msgspec.Struct, frozen=True):
    """``bounded`` for every topic but those ``kept`` forever. The default keeps everything."""

    bounded: Retention = KEEP_FOREVER
    kept: frozenset[str] = REPLAYED_TOPICS

    def of(self, topic: str) -> Retention:
        return KEEP_FOREVER if topic in self.kept else self.bounded


KEEP_ALL: Final = RetentionPolicy()


def retention_policy(max_age_s: float | None, max_bytes: int | None) -> RetentionPolicy:
    """The policy of the settings: non-positive values mean no limit."""
    age = max_age_s if max_age_s is not None and max_age_s > 0 else None
    size = max_bytes if max_bytes is not None and max_bytes > 0 else None
    return RetentionPolicy(bounded=Retention(age, size))
