"""The owner guard: servers that belong to a process (a test session, a bench) must not outlive it,
however it ends. An interpreter that exits runs ``atexit``; one that is SIGKILLed runs nothing, so a
watchdog process (``infra.local.watchdog``) waits for its owner's death and stops the servers then.

The watchdog reads its stdin, a pipe whose only write end the owner holds. The kernel closes it when
the owner exits in any way, and the read returns what was written: nothing when the owner died,
``RELEASE`` when the owner let the watchdog go because it had stopped its servers itself.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RELEASE = b"release\n"


class OwnerGuard:
    """A watchdog for a stack's base dir while its owner has servers running."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self._watchdog: subprocess.Popen[bytes] | None = None

    def arm(self) -> None:
        """Make sure a watchdog runs (started before the owner's first server)."""
        if self._watchdog is not None and self._watchdog.poll() is None:
            return
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        with (self.base_dir / "watchdog.log").open("ab") as log_file:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-m", "infra.local.watchdog", str(self.base_dir)],
                stdin=subprocess.PIPE,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                # Its own session: a Ctrl-C or a hang-up aimed at the owner must not reach it.
                start_new_session=True,
            )

    def release(self) -> None:
        """Let the watchdog go without stopping anything: the owner has no server running."""
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is None or watchdog.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError):
            watchdog.stdin.write(RELEASE)
        with contextlib.suppress(BrokenPipeError):
            watchdog.stdin.close()
        try:
            watchdog.wait(timeout=30)
        except subprocess.TimeoutExpired:
            watchdog.kill()
            watchdog.wait(timeout=10)
