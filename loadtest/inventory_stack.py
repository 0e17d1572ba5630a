"""Redis + MariaDB for the inventory benchmarks: the environment's, or a private throw-away stack."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from infra.local.stack import LocalStack
from loadtest.children import core_split, pin


@dataclass(frozen=True)
class Servers:
    redis_url: str
    mysql_url: str
    pids: tuple[int, ...] = ()  # of a private stack (empty for servers given in the environment)

    def split_cores(self) -> tuple[set[int], set[int]] | None:
        """``core_split()``, with these servers pinned beside the load tool (as if on other hosts)."""
        split = core_split()
        if split:
            for pid in self.pids:
                pin(pid, split[1])
        return split


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    """Redis and MariaDB: the environment's (EMPORIUM_CACHE_URL, EMPORIUM_DATABASE_URL) or a private stack."""
    redis_url = os.environ.get("EMPORIUM_CACHE_URL", "")
    mysql_url = os.environ.get("EMPORIUM_DATABASE_URL", "")
    if redis_url.startswith("redis://") and mysql_url.startswith("mysql://"):
        yield Servers(redis_url, mysql_url)
        return
    home = Path(tempfile.mkdtemp(prefix="bench-inventory-"))
    stack = LocalStack(home)
    try:
        urls = stack.ensure_many(["redis", "mariadb"])
        print(f"# started private redis + mariadb under {home}")
        pids = tuple(int(s["pid"]) for s in stack.status(check=False).values())
        yield Servers(urls["redis"], urls["mariadb"], pids)
    finally:
        stack.stop_all()
        shutil.rmtree(home, ignore_errors=True)
