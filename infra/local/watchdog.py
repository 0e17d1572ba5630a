"""``python -m infra.local.watchdog BASE_DIR``: wait until the owner of a stack exits or releases this
watchdog (see ``infra.local.guard``); when the owner died, stop every server of the stack."""

from __future__ import annotations

import sys
from pathlib import Path

from infra.local.guard import RELEASE
from infra.local.supervisor import LocalStack


def main(argv: list[str]) -> None:
    base_dir = Path(argv[0])
    if sys.stdin.buffer.read() == RELEASE:
        return
    print(f"the owner of {base_dir} died: stopping its servers", flush=True)
    LocalStack(base_dir, keep_running=True).stop_all()


if __name__ == "__main__":
    main(sys.argv[1:])
