"""Existing Kafka topics get the configured retention (``KafkaEventLog.ensure_topics``).

AlterConfigs replaces a topic's whole set of its own settings, so the others are described and sent back
unchanged with the retention replaced (the incremental API is not in aiokafka). A broker that does not
support it, or refuses, is a warning: the log starts all the same, and the topic keeps its retention.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

log = structlog.get_logger(__name__)

DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs v1+ config_source of a topic's own setting
BY_HAND = "the topic keeps its retention: set retention.ms / retention.bytes on it by hand"


async def align_retention(
    admin: AIOKafkaAdminClient, topics: list[str], wanted: Callable[[str], dict[str, str]]
) -> None:
    """Give existing ``topics`` the settings ``wanted(topic)`` (their retention), keeping the others."""
    if not topics:
        return
    described = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, t, None) for t in topics]
    )
    changes: list[ConfigResource] = []
    for response in described:
        for resource in response.resources:
            error_code, error_message, name, entries = resource[0], resource[1], resource[3], resource[4]
            if error_code:
                raise KafkaError(f"cannot describe topic {name!r}: error {error_code} {error_message}")
            settings = settings_with(wanted(name), entries, version=response.API_VERSION)
            if settings is None:
                continue
            if not settings:
                log.warning(
                    "eventlog.retention_not_altered", topic=name, reason=f"sensitive settings; {BY_HAND}"
                )
                continue
            changes.append(ConfigResource(ConfigResourceType.TOPIC, name, settings))
    if changes:
        await _alter(admin, changes, wanted)


def settings_with(wanted: dict[str, str], entries: Sequence[Any], *, version: int) -> dict[str, str] | None:
    """The topic's own settings with ``wanted`` in them; None when it has them already, {} when some
    own setting is sensitive (its value is not described, so it could not be sent back)."""
    if all(entry[1] == wanted[entry[0]] for entry in entries if entry[0] in wanted):
        return None
    # v0 entries say is_default, later ones config_source
    own = [e for e in entries if (not e[3] if version == 0 else e[3] == DYNAMIC_TOPIC_CONFIG)]
    if any(e[4] for e in own if e[0] not in wanted):
        return {}
    return {**{e[0]: e[1] for e in own}, **wanted}


async def _alter(
    admin: AIOKafkaAdminClient, changes: list[ConfigResource], wanted: Callable[[str], dict[str, str]]
) -> None:
    try:
        responses = await admin.alter_configs(changes)
    except KafkaError as exc:
        reason = f"the broker refused AlterConfigs ({exc!r}); {BY_HAND}"
        log.warning("eventlog.retention_not_altered", topics=[c.name for c in changes], reason=reason)
        return
    for response in responses:
        for resource in response.resources:
            error_code, error_message, name = resource[0], resource[1], resource[3]
            if error_code:
                reason = f"AlterConfigs answered error {error_code} {error_message}; {BY_HAND}"
                log.warning("eventlog.retention_not_altered", topic=name, reason=reason)
            else:
                log.info("eventlog.retention_altered", topic=name, **wanted(name))
