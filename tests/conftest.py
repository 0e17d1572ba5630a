"""Session fixtures: the local cluster stack, started lazily per server, stopped at the end.

A cluster URL given in the environment (EMPORIUM_EVENT_LOG_URL=kafka://..., EMPORIUM_SEARCH_URL=http://...,
EMPORIUM_CACHE_URL=redis://..., EMPORIUM_DATABASE_URL=mysql://..., EMPORIUM_RECOMMENDATIONS_URL=cassandra://...)
is used instead of starting that server. A server that cannot start fails the tests that need it, with
the reason: contract suites are never skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local.stack import LocalStack

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def _given(env_var: str, *schemes: str) -> str | None:
    value = os.environ.get(env_var, "")
    return value if value.split("://", 1)[0] in schemes else None


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(tmp_path_factory.mktemp("stack"))
    try:
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="session")
def kafka_url(local_stack: LocalStack) -> str:
    return _given("EMPORIUM_EVENT_LOG_URL", "kafka") or local_stack.ensure("kafka")


@pytest.fixture(scope="session")
def elasticsearch_url(local_stack: LocalStack) -> str:
    return _given("EMPORIUM_SEARCH_URL", "http", "https", "elasticsearch") or local_stack.ensure(
        "elasticsearch"
    )


@pytest.fixture(scope="session")
def redis_url(local_stack: LocalStack) -> str:
    return _given("EMPORIUM_CACHE_URL", "redis") or local_stack.ensure("redis")


@pytest.fixture(scope="session")
def mysql_url(local_stack: LocalStack) -> str:
    return _given("EMPORIUM_DATABASE_URL", "mysql", "mariadb") or local_stack.ensure("mariadb")


@pytest.fixture(scope="session")
def cassandra_url(local_stack: LocalStack) -> str:
    return _given("EMPORIUM_RECOMMENDATIONS_URL", "cassandra") or local_stack.ensure("cassandra")


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """The real catalogs in ../shared/datasets. Tests that need them fail (not skip) when absent."""
    if not DATASETS.is_dir():
        pytest.fail(f"real datasets not found at {DATASETS}; they ship in the workspace's shared/ folder")
    return DATASETS
