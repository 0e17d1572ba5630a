"""Processes of a benchmark: an `emporium` command that cannot outlive the bench, and CPU readings.

A bench killed by a timeout or SIGKILL never runs its ``finally`` blocks, and an orphaned server
keeps eating CPU on a 2-core machine. Linux's parent-death signal ends the child instead.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

PR_SET_PDEATHSIG = 1
ROOT = Path(__file__).resolve().parents[1]


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def core_split() -> tuple[set[int], set[int]] | None:
    """(the API server's core, every other core) on Linux with 2+ cores, else None.

    Benches that co-locate the API server with Redis, MariaDB and the load tool on this 2-core machine
    pin the server to one core and the rest to the other, as if they ran on other hosts. Unpinned, a
    woken Redis or MariaDB may be scheduled onto the server's core in the middle of its requests
    (measured: ~8% fewer reservations/s and a higher p99 than pinned, same code, same hour).
    """
    if sys.platform != "linux":
        return None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    return {cores[0]}, set(cores[1:])


def pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of a running process (best effort: a thread may end meanwhile)."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass


def spawn_emporium(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    stdout: IO[Any] | int | None = subprocess.DEVNULL,
    stderr: IO[Any] | int | None = None,
    new_session: bool = False,
    cpus: set[int] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``emporium ARGS`` from the repository root; it gets SIGTERM if the bench dies. With
    ``cpus`` it runs on those cores only (every thread it starts inherits that)."""

    def prepare() -> None:
        _die_with_parent()
        if cpus:
            os.sched_setaffinity(0, cpus)

    return subprocess.Popen(
        [sys.executable, "-c", "from emporium.cli import main; main()", *args],
        cwd=ROOT,
        env=dict(env),
        stdout=stdout,
        stderr=stderr,
        start_new_session=new_session,
        preexec_fn=prepare if sys.platform == "linux" else None,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``; NaN elsewhere or once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
