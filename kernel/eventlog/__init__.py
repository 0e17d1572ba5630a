"""The event-log port: ordered-per-key publishing and consumer groups with explicit commits.

Adapters: ``sqlite`` (embedded default) and ``kafka`` (aiokafka); the composition root picks one by the
scheme of ``EMPORIUM_EVENT_LOG_URL`` (``emporium.adapters``).
"""

from kernel.eventlog.port import Consumer, EventLog, OutgoingMessage, Record

__all__ = ["Consumer", "EventLog", "OutgoingMessage", "Record"]
