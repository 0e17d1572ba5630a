"""The server recipes, one module per server, and which server provides which service."""

from __future__ import annotations

from infra.local.servers.base import LaunchPlan, ServerSpec
from infra.local.servers.cassandra import CassandraSpec
from infra.local.servers.mariadb import MariadbSpec
from infra.local.servers.noida import NoidaSpec
from infra.local.servers.redis import RedisSpec
from infra.local.servers.spark import SparkSpec

SPECS: dict[str, ServerSpec] = {
    spec.name: spec for spec in (RedisSpec(), MariadbSpec(), NoidaSpec(), CassandraSpec(), SparkSpec())
}
#: The server that provides each service.
SERVER_OF: dict[str, str] = {service: spec.name for spec in SPECS.values() for service in spec.services}
# Slowest first, so the long boots overlap with the short ones when several are started together.
START_ORDER = ("cassandra", "spark", "noida", "mariadb", "redis")


def start_rank(server: str) -> int:
    return START_ORDER.index(server) if server in START_ORDER else len(START_ORDER)


__all__ = [
    "SERVER_OF",
    "SPECS",
    "START_ORDER",
    "CassandraSpec",
    "LaunchPlan",
    "MariadbSpec",
    "NoidaSpec",
    "RedisSpec",
    "ServerSpec",
    "SparkSpec",
    "start_rank",
]
