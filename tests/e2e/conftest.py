"""Shared fixtures of the end-to-end tests: the real app (`create_app`) on a temporary embedded data dir.

Each fixture is a factory, so a test module picks the settings and the scope it needs:

- `embedded_settings(data_dir, **overrides)`: settings of the embedded stack (SQLite, Tantivy,
  in-process cache) on `data_dir`, ignoring the caller's environment;
- `running_app(settings, own_event_log=False)`: the app with its lifespan run, reached in process
  through `AsyncTestClient`, plus, when asked, the test's own connection to the same (SQLite) event
  log, like another process publishing to it (the app runs on the test client's event loop);
- `served_app(app)` / `served_app_in_thread(app)`: the app behind a real uvicorn socket, on the test's
  event loop or on a thread of its own (for synchronous clients such as schemathesis);
- `emporium_demo(data_dir, products, **env)`: the `emporium demo` command as a child process, what
  `make run` starts, on a free port.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient

from emporium.app import create_app
from kernel.eventlog.port import EventLog
from kernel.eventlog.sqlite import SqliteEventLog
from kernel.settings import Settings, load_settings

SERVER_START_TIMEOUT_S = 60
DEMO_START_TIMEOUT_S = 90
# What `make run` in a clean shell does not have: cluster URLs (the demo is the embedded stack) and an
# admin token (the demo makes one and saves it under its data dir).
NOT_INHERITED_BY_THE_DEMO = (
    *(f"EMPORIUM_{port}_URL" for port in ("EVENT_LOG", "SEARCH", "CACHE", "DATABASE", "RECOMMENDATIONS")),
    "EMPORIUM_ADMIN_TOKEN",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningApp(NamedTuple):
    """The app under test, in process, and (if asked for) the test's own handle on its event log."""

    client: AsyncTestClient[Litestar]
    event_log: EventLog | None


class Demo(NamedTuple):
    """A running `emporium demo` process. `output` holds what it printed once the context has exited."""

    base_url: str
    port: int
    data_dir: Path
    output: list[str]


def _embedded_settings(data_dir: Path, **overrides: Any) -> Settings:
    return load_settings(env={}, data_dir=str(data_dir), **{"log_format": "console", **overrides})


@asynccontextmanager
async def _running_app(settings: Settings, own_event_log: bool = False) -> AsyncIterator[RunningApp]:
    app = create_app(settings)
    async with AsyncTestClient(app=app) as client:
        if not own_event_log:
            yield RunningApp(client, None)
            return
        event_log = SqliteEventLog.from_url(settings.event_log_url)  # the embedded stack's log
        await event_log.start()
        try:
            yield RunningApp(client, event_log)
        finally:
            await event_log.close()


def _uvicorn(app: Litestar, port: int) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    )


@asynccontextmanager
async def _served_app(app: Litestar) -> AsyncIterator[str]:
    port = free_port()
    server = _uvicorn(app, port)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        assert not task.done(), "server failed to start"
        assert time.monotonic() < deadline, f"server did not start in {SERVER_START_TIMEOUT_S}s"
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@contextmanager
def _served_app_in_thread(app: Litestar) -> Iterator[str]:
    port = free_port()
    server = _uvicorn(app, port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        assert thread.is_alive(), "server failed to start"
        assert time.monotonic() < deadline, f"server did not start in {SERVER_START_TIMEOUT_S}s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def _wait_until_healthy(proc: subprocess.Popen[str], base_url: str) -> None:
    deadline = time.monotonic() + DEMO_START_TIMEOUT_S
    while True:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, (
            f"emporium demo did not answer /healthz within {DEMO_START_TIMEOUT_S} s"
        )
        time.sleep(0.3)


@contextmanager
def _emporium_demo(data_dir: Path, products: int, **env: str) -> Iterator[Demo]:
    """`emporium demo` as `make run` starts it, with `env` on top of a cleaned copy of this environment."""
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED_BY_THE_DEMO}
    child_env = {**inherited, "EMPORIUM_DATA_DIR": str(data_dir), **env}
    emporium = str(Path(sys.executable).parent / "emporium")
    proc = subprocess.Popen(
        [emporium, "demo", "--products", str(products), "--port", str(port)],
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    demo = Demo(f"http://127.0.0.1:{port}", port, data_dir, [])
    try:
        _wait_until_healthy(proc, demo.base_url)
        yield demo
    finally:
        proc.terminate()
        try:
            output = proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0]
        demo.output.append(output)


@pytest.fixture(scope="session")
def embedded_settings() -> Callable[..., Settings]:
    return _embedded_settings


@pytest.fixture(scope="session")
def running_app() -> Callable[..., AbstractAsyncContextManager[RunningApp]]:
    return _running_app


@pytest.fixture(scope="session")
def served_app() -> Callable[[Litestar], AbstractAsyncContextManager[str]]:
    return _served_app


@pytest.fixture(scope="session")
def served_app_in_thread() -> Callable[[Litestar], AbstractContextManager[str]]:
    return _served_app_in_thread


@pytest.fixture(scope="session")
def emporium_demo() -> Callable[..., AbstractContextManager[Demo]]:
    return _emporium_demo
