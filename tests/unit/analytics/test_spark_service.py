"""The Spark service of the local stack, without starting it: its addresses, what its probe asks, and
the session factory's URL check."""

from __future__ import annotations

import socket

import pytest

from analytics.jobs.session import SparkUrlError, check_spark_url
from infra.local.probes import probe_spark
from infra.local.servers import SERVER_OF, SPECS
from infra.local.services import SERVICE_ENV, SERVICES, external_url


def test_spark_is_a_service_of_the_stack_named_by_emporium_spark_url() -> None:
    assert "spark" in SERVICES and SERVER_OF["spark"] == "spark"
    assert external_url("spark", {"EMPORIUM_SPARK_URL": "spark://10.0.0.5:7077"}) == "spark://10.0.0.5:7077"
    assert external_url("spark", {"EMPORIUM_SPARK_URL": "local[*]"}) is None  # local is not a server
    assert SERVICE_ENV["spark"][0] == "EMPORIUM_SPARK_URL"


def test_the_probe_asks_the_masters_web_ui() -> None:
    spec = SPECS["spark"]
    urls = spec.urls({"spark": 7077, "spark_ui": 8080, "worker_ui": 8081})
    assert urls["spark"] == "spark://127.0.0.1:7077"
    assert spec.probe_url("spark", urls) == "http://127.0.0.1:8080"
    assert SPECS["redis"].probe_url("redis", {"redis": "redis://x"}) == "redis://x"


def test_an_external_master_that_does_not_listen_fails_its_probe() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(OSError):
        probe_spark(f"spark://127.0.0.1:{port}", 0.5)


def test_spark_urls_are_checked_before_a_session_starts() -> None:
    assert check_spark_url("local[*]") == "local[*]"
    assert check_spark_url("spark://127.0.0.1:7077")
    with pytest.raises(SparkUrlError):
        check_spark_url("yarn")
