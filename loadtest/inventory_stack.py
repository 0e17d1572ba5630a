"""Redis + MariaDB for the inventory benchmarks: the environment's, or a private throw-away stack; and a
cluster engine on a database of its own there (benchmark runs, chaos tests)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from infra.local.stack import LocalStack
from inventory.cluster import ClusterEngine
from loadtest.children import core_split, pin
from loadtest.inventory_audit import drop_mysql_database, mysql_target, mysql_url_with_database


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


@contextlib.asynccontextmanager
async def fresh_engine(
    redis_url: str, mysql_url: str, name: str, **options: Any
) -> AsyncIterator[tuple[ClusterEngine, str]]:
    """A started cluster engine (``options`` go to it) on a database of its own, ``<name>_<random>``;
    yields it and the database's URL. Afterwards the engine is closed, its database dropped and its
    Redis keys unlinked: a next run must not find (and SCAN past) this one's idempotency keys and holds.
    A Redis that is down by then (a chaos test killed it) keeps them."""
    db_url = mysql_url_with_database(mysql_url, f"{name}_{uuid.uuid4().hex[:8]}")
    engine = ClusterEngine(redis_url, mysql_target(db_url), **options)
    try:
        await engine.start()
        yield engine, db_url
    finally:
        await engine.close()
        drop_mysql_database(db_url)
        with contextlib.suppress(redis.RedisError):
            sync = redis.Redis.from_url(redis_url)
            try:
                unlink_keys(sync, f"{engine.prefix}:*")
            finally:
                sync.close()


def unlink_keys(client: Any, pattern: str) -> None:
    """Delete the keys matching ``pattern``, 5,000 per call."""
    chunk: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=5000):
        chunk.append(key)
        if len(chunk) >= 5000:
            client.unlink(*chunk)
            chunk.clear()
    if chunk:
        client.unlink(*chunk)
