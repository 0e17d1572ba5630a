"""The edge topology's supervisor: one process that starts Nginx, the API workers, the projector (and
Prometheus), restarts any that exits, and stops them all on SIGTERM. ``infra.local.edge`` starts it
detached; run as ``python -m infra.local.edge_supervisor PLAN.json``.

A child that ran for a while is restarted at once (a crash or a kill -9: the worker rejoins Nginx's
upstream by itself once it answers); one that keeps dying within ``QUICK_EXIT_S`` waits longer each time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import psutil

log = logging.getLogger("emporium.edge")

QUICK_EXIT_S = 10.0
MAX_BACKOFF_S = 10.0
STOP_GRACE_S = 20.0
POLL_S = 0.2


class ChildSpec(msgspec.Struct, kw_only=True):
    name: str
    command: list[str]
    env: dict[str, str]
    log_file: str
    stop_signal: int = int(signal.SIGTERM)


class ChildState(msgspec.Struct, kw_only=True):
    name: str
    pid: int
    create_time: float
    restarts: int


class EdgePlan(msgspec.Struct, kw_only=True):
    children: list[ChildSpec]
    #: where the supervisor writes the children's PIDs after each start
    state_file: str


class _Child:
    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.process: psutil.Popen | None = None
        self.started = 0.0
        self.restarts = 0
        self.quick_exits = 0
        self.not_before = 0.0

    def spawn(self) -> None:
        with Path(self.spec.log_file).open("ab") as out:
            self.process = psutil.Popen(
                self.spec.command, env=self.spec.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        self.started = time.monotonic()
        log.info("started %s (pid %d)", self.spec.name, self.process.pid)

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def schedule_restart(self, code: int) -> None:
        ran = time.monotonic() - self.started
        self.quick_exits = self.quick_exits + 1 if ran < QUICK_EXIT_S else 0
        delay = min(MAX_BACKOFF_S, 0.5 * 2 ** (self.quick_exits - 1)) if self.quick_exits else 0.0
        log.warning("%s exited (code %s) after %.1fs; restarting in %.1fs", self.spec.name, code, ran, delay)
        self.not_before = time.monotonic() + delay
        self.restarts += 1
        self.process = None

    def state(self) -> ChildState:
        assert self.process is not None
        return ChildState(
            name=self.spec.name,
            pid=self.process.pid,
            create_time=self.process.create_time(),
            restarts=self.restarts,
        )


def _write_state(path: Path, children: list[_Child]) -> None:
    states = [child.state() for child in children if child.process is not None]
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.encode(states))
    tmp.replace(path)


def _stop(children: list[_Child]) -> None:
    live = [c for c in children if c.process is not None and c.exited() is None]
    for child in live:
        assert child.process is not None
        with contextlib.suppress(psutil.NoSuchProcess):
            child.process.send_signal(child.spec.stop_signal)
    deadline = time.monotonic() + STOP_GRACE_S
    for child in live:
        assert child.process is not None
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except psutil.TimeoutExpired:
            log.warning("%s ignored its stop signal: SIGKILL", child.spec.name)
            child.process.kill()
            child.process.wait(10)


def supervise(plan: EdgePlan) -> None:
    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    children = [_Child(spec) for spec in plan.children]
    state_file = Path(plan.state_file)
    for child in children:
        child.spawn()
    _write_state(state_file, children)
    while not stopping:
        changed = False
        for child in children:
            code = child.exited()
            if code is not None:
                child.schedule_restart(code)
            if child.process is None and time.monotonic() >= child.not_before:
                child.spawn()
                changed = True
        if changed:
            _write_state(state_file, children)
        time.sleep(POLL_S)
    log.info("stopping (signal %d)", stopping[0])
    _stop(children)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    plan = msgspec.json.decode(Path(sys.argv[1]).read_bytes(), type=EdgePlan)
    log.info("supervisor pid %d: %s", os.getpid(), ", ".join(c.name for c in plan.children))
    supervise(plan)


if __name__ == "__main__":
    main()
