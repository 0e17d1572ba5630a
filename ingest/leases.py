"""Who holds an import lease: a process, named so that a restart can tell it is gone.

A lease outlives a crashed importer until it expires; the holder's name lets the ingest store release
it at once when the importer was a process of this host that no longer runs (``kill -9``, a crash, a
reboot), and mark its report ``failed``. A holder on another host is judged by expiry alone.
"""

from __future__ import annotations

import functools
import os
import socket

import psutil


@functools.cache
def current_holder() -> str:
    """``host/pid/start`` of this process (the start time tells a reused pid apart)."""
    started_ms = int(psutil.Process().create_time() * 1000)
    return f"{socket.gethostname()}/{os.getpid()}/{started_ms}"


def holder_gone(holder: str | None) -> bool:
    """True when ``holder`` is a process of this host that is no longer running."""
    if not holder:
        return False
    host, _, rest = holder.partition("/")
    pid, _, started = rest.partition("/")
    if host != socket.gethostname() or not pid.isdigit() or not started.isdigit():
        return False
    try:
        return int(psutil.Process(int(pid)).create_time() * 1000) != int(started)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True
    except psutil.Error:
        return False
