"""Embedded event log: an append-only SQLite table with Kafka's model (topics, partitions, offsets, groups).

Why it looks like this:

* One file, WAL journal: readers never block the writer, and several processes (``serve`` with its
  in-process projectors, ``emporium feed import`` in another shell) can share the file. Writes use
  ``BEGIN IMMEDIATE`` and stay short; ``busy_timeout`` makes a competing writer wait instead of failing.
* ``synchronous=NORMAL`` by default: in WAL mode a commit survives a crash or kill of any process (the
  guarantee Kafka gives with its default page-cache flushing); only an OS crash or power loss can roll
  back the last few commits, and the file never corrupts. ``?synchronous=full`` fsyncs every commit for
  power-loss durability at the cost of one fsync per publish batch.
* sqlite3 calls block, so every connection lives on its own single-thread executor: the event loop keeps
  serving HTTP while a batch is written or read.
* The partition of a record is ``crc32(key) % partitions`` (stable across processes and restarts, unlike
  Python's salted ``hash``), so per-key order is per-partition order.
* Consumer groups: members register with a heartbeat; partitions are spread round-robin over live
  members. A member gives a partition up only at its next ``poll`` (after its batch was committed or
  abandoned) and a new owner claims it only once released or once the old member's heartbeat expired,
  so one partition is never read by two members at once. ``commit`` only writes offsets of partitions
  the member still owns: a member that lost a partition cannot move its offset.

Modules: ``schema`` (tables), ``connection`` (worker-thread connection, write transaction), ``records``
(topics, offsets, append, read, lag), ``groups`` (membership and assignment), ``idle`` (cheap wake-ups
of idle consumers), ``retention`` (pruning what the retention policy drops), ``log``
(:class:`SqliteEventLog`), ``consumer`` (:class:`SqliteConsumer`).
"""

from kernel.eventlog.sqlite.consumer import SqliteConsumer
from kernel.eventlog.sqlite.log import DEFAULT_PARTITIONS, SqliteEventLog
from kernel.eventlog.sqlite.records import partition_for

__all__ = ["DEFAULT_PARTITIONS", "SqliteConsumer", "SqliteEventLog", "partition_for"]
