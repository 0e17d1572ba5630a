"""The local cluster stack: real Redis, MariaDB, noida-db (Kafka + Elasticsearch) and Cassandra 2.1.

One ``LocalStack`` owns a base directory. Each server gets free loopback ports, a throw-away data dir
and a log file under it, and counts as started only once it answers a real request through the client
the app uses (PING, ``SELECT 1`` as the app user, Kafka cluster metadata, Elasticsearch ``info``, a CQL
query). Servers are stopped by their own PID (SIGTERM, wait, SIGKILL only as a last resort) and their
exit is verified.

Two ways to use it, sharing this code:

* pytest (``tests/conftest.py``) and the benches: ``LocalStack(tmp)``. The servers belong to the
  process: they are stopped by the fixture finalizer, by ``atexit`` when the interpreter exits early,
  and by a watchdog process when it dies without running either (``infra.local.guard``).
* ``emporium services up|down|status``: ``LocalStack(Path(".stack"), keep_running=True)``. The servers
  outlive the command; ``state.json`` in the base dir lets a later ``down`` or ``status`` find them.

The package, one job per module: ``services`` (names, env vars, StackError), ``servers/`` (one recipe
per server), ``probes`` (readiness requests), ``ports``, ``state`` (state.json), ``processes`` (psutil:
find, inspect, stop), ``supervisor`` (LocalStack), ``guard`` and ``watchdog`` (owner death).
"""

from __future__ import annotations

from infra.local.probes import PROBES, probe, probe_kafka
from infra.local.servers import (
    SERVER_OF,
    SPECS,
    CassandraSpec,
    LaunchPlan,
    MariadbSpec,
    NoidaSpec,
    RedisSpec,
    ServerSpec,
)
from infra.local.services import (
    APP_DATABASE,
    APP_PASSWORD,
    APP_USER,
    CASSANDRA_PROTOCOL_VERSION,
    SERVICE_ENV,
    SERVICES,
    StackError,
    external_url,
)
from infra.local.state import ServerRecord, StackState
from infra.local.supervisor import DEFAULT_START_TIMEOUT, LocalStack

__all__ = [
    "APP_DATABASE",
    "APP_PASSWORD",
    "APP_USER",
    "CASSANDRA_PROTOCOL_VERSION",
    "DEFAULT_START_TIMEOUT",
    "PROBES",
    "SERVER_OF",
    "SERVICES",
    "SERVICE_ENV",
    "SPECS",
    "CassandraSpec",
    "LaunchPlan",
    "LocalStack",
    "MariadbSpec",
    "NoidaSpec",
    "RedisSpec",
    "ServerRecord",
    "ServerSpec",
    "StackError",
    "StackState",
    "external_url",
    "probe",
    "probe_kafka",
]
