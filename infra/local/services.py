"""What the local stack offers: its services, the env var that names an external server for each, the
addresses it hands out, and the one error it raises."""

from __future__ import annotations

import os
from collections.abc import Mapping

SERVICES: tuple[str, ...] = ("redis", "mariadb", "kafka", "elasticsearch", "cassandra", "spark")

#: The env var that names each service's external server, and the URL schemes that count as one.
SERVICE_ENV: dict[str, tuple[str, tuple[str, ...]]] = {
    "kafka": ("EMPORIUM_EVENT_LOG_URL", ("kafka",)),
    "elasticsearch": ("EMPORIUM_SEARCH_URL", ("http", "https", "elasticsearch")),
    "redis": ("EMPORIUM_CACHE_URL", ("redis", "rediss")),
    "mariadb": ("EMPORIUM_DATABASE_URL", ("mysql", "mariadb")),
    "cassandra": ("EMPORIUM_RECOMMENDATIONS_URL", ("cassandra",)),
    "spark": ("EMPORIUM_SPARK_URL", ("spark",)),
}

#: The MariaDB user, password and database (and the Cassandra keyspace) that the app is given.
APP_USER = APP_PASSWORD = APP_DATABASE = "emporium"
#: Cassandra 2.1 speaks native protocol v3 at most.
CASSANDRA_PROTOCOL_VERSION = 3


class StackError(RuntimeError):
    """A server could not be started, did not answer, or would not stop. Carries the log's tail."""


def external_url(service: str, env: Mapping[str, str] | None = None) -> str | None:
    """The URL of an externally given server for ``service``, or None when it should be started here."""
    env_var, schemes = SERVICE_ENV[service]
    value = (os.environ if env is None else env).get(env_var, "")
    return value if value.split("://", 1)[0] in schemes else None
