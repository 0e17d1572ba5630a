"""The HTTP endpoint of a process that serves no API (``emporium project``): ``/metrics`` for Prometheus,
``/healthz`` (alive: its event loop turned within ``stall_after_s``) and ``/readyz`` (``ready()`` holds),
so orchestrators probe it like an API worker. Served from a thread, as prometheus_client's own server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

StartResponse = Callable[..., Any]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds: no access log
        pass


class ProbeServer:
    def __init__(
        self,
        port: int,
        registry: CollectorRegistry,
        ready: Callable[[], bool],
        *,
        stall_after_s: float = 10.0,
    ) -> None:
        self.port, self.ready, self.stall_after_s = port, ready, stall_after_s
        self.metrics = make_wsgi_app(registry)
        self.beat = time.monotonic()
        self._server: WSGIServer | None = None

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            ok = time.monotonic() - self.beat < self.stall_after_s
            return self._answer(start_response, ok, b"ok" if ok else b"event loop stalled")
        if path == "/readyz":
            ok = self.ready()
            return self._answer(start_response, ok, b"ready" if ok else b"not ready")
        return self.metrics(environ, start_response)

    @staticmethod
    def _answer(start_response: StartResponse, ok: bool, body: bytes) -> list[bytes]:
        start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
        return [body]

    def start(self) -> None:
        self._server = make_server("0.0.0.0", self.port, self._app, handler_class=_Quiet)
        threading.Thread(target=self._server.serve_forever, name="probe-server", daemon=True).start()

    async def heartbeat(self) -> None:
        """Run on the event loop: each turn proves it is not stuck."""
        while True:
            self.beat = time.monotonic()
            await asyncio.sleep(1.0)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
