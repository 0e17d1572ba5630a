"""`emporium project --metrics-port`: /metrics, /healthz and /readyz, as the Kubernetes probes and the
edge topology's supervisor use them."""

from __future__ import annotations

import socket

import httpx
from prometheus_client import CollectorRegistry, Counter

from emporium.probe_server import ProbeServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_probe_server_answers_health_readiness_and_metrics() -> None:
    registry = CollectorRegistry()
    Counter("emporium_probe_test", "a metric", registry=registry).inc()
    ready = {"now": False}
    server = ProbeServer(_free_port(), registry, lambda: ready["now"], stall_after_s=5)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 503
        ready["now"] = True
        assert httpx.get(f"{base}/readyz").status_code == 200
        assert "emporium_probe_test_total 1.0" in httpx.get(f"{base}/metrics").text
        server.beat -= 10  # the event loop has not turned for 10 s
        assert httpx.get(f"{base}/healthz").status_code == 503
    finally:
        server.stop()
