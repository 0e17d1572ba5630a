"""Pick the event-log adapter from its URL: ``sqlite:///path`` or ``kafka://host:port[,host:port]``."""

from __future__ import annotations

from urllib.parse import urlsplit

from kernel.eventlog.port import EventLog


def open_event_log(url: str, *, client_id: str = "emporium") -> EventLog:
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from kernel.eventlog.sqlite import SqliteEventLog

        return SqliteEventLog.from_url(url)
    if scheme == "kafka":
        from kernel.eventlog.kafka import KafkaEventLog

        return KafkaEventLog.from_url(url, client_id=client_id)
    raise ValueError(f"unsupported event log URL {url!r}: use sqlite:///PATH or kafka://HOST:PORT")
