"""Helpers for inventory tests: a controllable clock, unique names, private Redis/MariaDB servers
that chaos tests may stop, flush and restart (built from the local stack's recipes, never the shared
servers), ``emporium serve`` in a subprocess, and the audits of loadtest.inventory_audit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pymysql

from infra.local.stack import APP_DATABASE, APP_PASSWORD, APP_USER, MariadbSpec, RedisSpec
from loadtest.inventory_audit import (
    Audit,
    audit_mysql,
    audit_sqlite,
    drop_mysql_database,
    mysql_target,
    mysql_url_with_database,
)

__all__ = [
    "Audit",
    "FakeClock",
    "PrivateServer",
    "ServiceProcess",
    "audit_mysql",
    "audit_sqlite",
    "drop_mysql_database",
    "free_port",
    "mysql_target",
    "mysql_url_with_database",
    "private_mariadb",
    "private_redis",
    "unique_name",
]


class FakeClock:
    """Wall-clock seconds that only move when told to (expiry tests)."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# Private servers for chaos tests ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server did not open port {port} in {timeout}s: {log.read_text()[-2000:]}")


@dataclass
class PrivateServer:
    """A server process this test owns: start, stop (SIGTERM), kill (SIGKILL), restart on the same
    port and data directory. The command comes from infra/local/stack.py's recipe."""

    name: str
    command: list[str]
    port: int
    log: Path
    url: str
    proc: subprocess.Popen[bytes] | None = None
    ready_check: Any = None

    def start(self, timeout: float = 60.0) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                self.command, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )
        _wait_port(self.port, timeout, self.proc, self.log)
        if self.ready_check is not None:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    self.ready_check(self.url)
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def private_redis(home: Path) -> PrivateServer:
    port = free_port()
    data = home / "redis-data"
    data.mkdir(parents=True, exist_ok=True)
    plan = RedisSpec().prepare(home, data, {"redis": port})
    return PrivateServer("redis", plan.command, port, home / "redis.log", f"redis://127.0.0.1:{port}/0")


def _mysql_ping(url: str) -> None:
    conn = pymysql.connect(**mysql_target(url).pymysql_kwargs(), connect_timeout=2)
    conn.close()


def private_mariadb(home: Path) -> PrivateServer:
    port = free_port()
    data = home / "mariadb-data"
    data.mkdir(parents=True, exist_ok=True)
    plan = MariadbSpec().prepare(home, data, {"mariadb": port})
    url = f"mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{port}/{APP_DATABASE}?ssl_mode=disabled"
    return PrivateServer("mariadb", plan.command, port, home / "mariadb.log", url, ready_check=_mysql_ping)


@dataclass
class ServiceProcess:
    """``emporium serve`` in a subprocess (its own session), for kill -9 tests and benchmarks; or another
    command answering ``/readyz`` on ``port`` (``("project", "--metrics-port")``: a projector process)."""

    env: dict[str, str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    command: tuple[str, ...] = ("serve", "--port")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        with self.log.open("ab") as fh:
            command = [sys.executable, "-c", "from emporium.cli import main; main()", *self.command]
            self.proc = subprocess.Popen(
                [*command, str(self.port)],
                env={**os.environ, **self.env}, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.base + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"service not ready in {timeout}s: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(30)
        self.proc = None
