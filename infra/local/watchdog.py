"""``python -m infra.local.watchdog BASE_DIR``: wait for the owner of a stack to exit (its stdin
reaches end of file), then stop every server of the stack. Started by ``infra.local.guard``."""

from __future__ import annotations

import sys
from pathlib import Path

from infra.local.supervisor import LocalStack


def main(argv: list[str]) -> None:
    base_dir = Path(argv[0])
    sys.stdin.buffer.read()
    LocalStack(base_dir, keep_running=True).stop_all()


if __name__ == "__main__":
    main(sys.argv[1:])
