"""Session fixtures: the local cluster stack, started lazily per server, stopped at the end; and the
``cluster`` marker, kept truthful.

A cluster URL given in the environment (EMPORIUM_EVENT_LOG_URL=kafka://..., EMPORIUM_SEARCH_URL=http://...,
EMPORIUM_CACHE_URL=redis://..., EMPORIUM_DATABASE_URL=mysql://..., EMPORIUM_RECOMMENDATIONS_URL=cassandra://...)
is used instead of starting that server. A server that cannot start fails the tests that need it, with
the reason: contract suites are never skipped.

``cluster`` marks every test that needs a server: each test that (transitively) uses a server fixture
is marked here at collection. A fixture parametrized over an embedded and a cluster adapter, which
reaches the server through ``request.getfixturevalue``, marks its cluster parameter itself:
``pytest.param("kafka", marks=pytest.mark.cluster)``. So ``pytest -m "not cluster"`` starts no server;
a test that reaches one without the marker fails in such a run and names the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local.stack import LocalStack, external_url

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"

#: The fixtures that start (or name) a server; any test that uses one is a cluster test.
SERVER_FIXTURES = frozenset(
    {"local_stack", "kafka_url", "elasticsearch_url", "redis_url", "mysql_url", "cassandra_url", "spark_url"}
)
#: Whether any test selected for this run is marked ``cluster``.
CLUSTER_IN_RUN = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[CLUSTER_IN_RUN] = any(item.get_closest_marker("cluster") for item in session.items)


@pytest.fixture(autouse=True)
def _cluster_marker_is_truthful(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that reached a server fixture (even through ``getfixturevalue``) unmarked."""
    yield
    reached = SERVER_FIXTURES.intersection(request.fixturenames)
    if reached and request.node.get_closest_marker("cluster") is None:
        pytest.fail(
            f"uses {', '.join(sorted(reached))} but is not marked `cluster`: mark the parameter that "
            "reaches it pytest.param(..., marks=pytest.mark.cluster)",
            pytrace=False,
        )


def _server_url(request: pytest.FixtureRequest, stack: LocalStack, service: str) -> str:
    """The server given in the environment, else one this session starts."""
    given = external_url(service)
    if given:
        return given
    if not request.config.stash.get(CLUSTER_IN_RUN, True):
        pytest.fail(
            f"a test not marked `cluster` asked for {service}, in a run that selects no cluster test: "
            "mark its cluster parameter pytest.param(..., marks=pytest.mark.cluster)",
            pytrace=False,
        )
    return stack.ensure(service)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(tmp_path_factory.mktemp("stack"))
    try:
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="session")
def kafka_url(request: pytest.FixtureRequest, local_stack: LocalStack) -> str:
    return _server_url(request, local_stack, "kafka")


@pytest.fixture(scope="session")
def elasticsearch_url(request: pytest.FixtureRequest, local_stack: LocalStack) -> str:
    return _server_url(request, local_stack, "elasticsearch")


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest, local_stack: LocalStack) -> str:
    return _server_url(request, local_stack, "redis")


@pytest.fixture(scope="session")
def mysql_url(request: pytest.FixtureRequest, local_stack: LocalStack) -> str:
    return _server_url(request, local_stack, "mariadb")


@pytest.fixture(scope="session")
def cassandra_url(request: pytest.FixtureRequest, local_stack: LocalStack) -> str:
    return _server_url(request, local_stack, "cassandra")


@pytest.fixture(scope="session")
def spark_url(request: pytest.FixtureRequest, local_stack: LocalStack) -> str:
    """A Spark standalone master with one worker (from the installed pyspark), or EMPORIUM_SPARK_URL."""
    return _server_url(request, local_stack, "spark")


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """The real catalogs in ../shared/datasets. Tests that need them fail (not skip) when absent."""
    if not DATASETS.is_dir():
        pytest.fail(f"real datasets not found at {DATASETS}; they ship in the workspace's shared/ folder")
    return DATASETS
