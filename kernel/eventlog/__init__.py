"""The event-log port: ordered-per-key publishing and consumer groups with explicit commits.

Adapters: ``sqlite`` (embedded default) and ``kafka`` (aiokafka). Open one with
:func:`kernel.eventlog.factory.open_event_log` from a URL.
"""

from kernel.eventlog.port import Consumer, EventLog, OutgoingMessage, Record

__all__ = ["Consumer", "EventLog", "OutgoingMessage", "Record"]
