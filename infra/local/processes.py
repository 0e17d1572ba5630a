"""The servers as processes, through psutil: find one by its record, see what it listens on, stop it.

Each server leads its own session (started with ``start_new_session``), so whatever it forks is found
by session id even after it has been reparented.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Sequence

import psutil
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from infra.local.state import ServerRecord

log = logging.getLogger("emporium.stack")

#: Seconds a recorded start time may differ from psutil's reading of the same process.
_START_TIME_SLACK = 1.0
_GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def running_process(record: ServerRecord) -> psutil.Process | None:
    """The recorded server's process while it runs (a zombie counts as exited), else None."""
    try:
        process = psutil.Process(record.pid)
        if record.create_time and abs(process.create_time() - record.create_time) > _START_TIME_SLACK:
            return None  # the PID now belongs to another process
        return None if process.status() in _GONE else process
    except psutil.NoSuchProcess:
        return None


def is_running(record: ServerRecord) -> bool:
    return running_process(record) is not None


def session_members(record: ServerRecord) -> list[psutil.Process]:
    """Live processes in the server's session that started no earlier than the server."""
    members = []
    for process in psutil.process_iter(["create_time", "status"]):
        with contextlib.suppress(OSError):
            if (
                os.getsid(process.pid) == record.pid
                and (process.info["create_time"] or 0) >= record.create_time - _START_TIME_SLACK
                and process.info["status"] not in _GONE
            ):
                members.append(process)
    return members


def listens_on(server: psutil.Process, port: int) -> bool:
    """Whether ``server`` or one of its descendants listens on TCP ``port``."""

    def listening(process: psutil.Process) -> bool:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            return any(
                c.status == psutil.CONN_LISTEN and c.laddr.port == port
                for c in process.net_connections(kind="tcp")
            )
        return False

    if listening(server):
        return True
    with contextlib.suppress(psutil.NoSuchProcess):
        return any(listening(child) for child in server.children(recursive=True))
    return False


def has_exited(process: psutil.Process) -> bool:
    """True once ``process`` is gone or a zombie; reaps it when it is our own child."""
    try:
        process.wait(timeout=0)
        return True
    except psutil.TimeoutExpired:
        return process.status() in _GONE
    except psutil.NoSuchProcess:
        return True


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    retrying = Retrying(
        stop=stop_after_delay(max(0.0, timeout)),
        wait=wait_fixed(interval),
        retry=retry_if_result(lambda held: not held),
        retry_error_callback=lambda _state: False,
    )
    return bool(retrying(condition))


def _send(process: psutil.Process, action: Callable[[], None]) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        action()


def stop_servers(records: Sequence[ServerRecord], grace_of: Callable[[str], float]) -> list[str]:
    """SIGTERM every server at once (they shut down in parallel), SIGKILL any still running after its
    grace, then SIGKILL whatever is left in its session. Returns the servers that survived SIGKILL."""
    live = [(record, process) for record in records if (process := running_process(record))]
    for record, process in live:
        log.info("stopping %s (pid %d)", record.server, record.pid)
        _send(process, process.terminate)
    started = time.monotonic()
    survivors: list[str] = []
    for record, process in live:
        grace = grace_of(record.server)
        if not wait_until(functools.partial(has_exited, process), started + grace - time.monotonic()):
            log.warning("%s (pid %d) ignored SIGTERM for %.0fs: SIGKILL", record.server, record.pid, grace)
            _send(process, process.kill)
            if not wait_until(functools.partial(has_exited, process), 15.0):
                survivors.append(f"{record.server} (pid {record.pid})")
        for member in session_members(record):
            _send(member, member.kill)
    return survivors
