"""Helpers of the chaos and kill -9 tests: waiting for a condition and ``emporium serve`` on the embedded
stack. (The private Redis and MariaDB a test may break are the ``own_redis`` / ``own_mariadb`` fixtures of
tests/integration/conftest.py; a cluster engine on a database of its own is
``loadtest.inventory_stack.fresh_engine``.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from inventory_support import ServiceProcess, free_port


async def wait_until(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {within}s"
        await asyncio.sleep(0.05)


def embedded_service(tmp_path: Path, admin_token: str) -> tuple[ServiceProcess, Path]:
    """``emporium serve`` on the embedded stack (SQLite, Tantivy, in-process cache) under ``tmp_path``,
    not started yet, with no storefront rate limit (a whole sale is one storefront's); and its database."""
    data = tmp_path / "data"
    db = data / "emporium.db"
    env = {
        "EMPORIUM_DATA_DIR": str(data),
        "EMPORIUM_ADMIN_TOKEN": admin_token,
        "EMPORIUM_EVENT_LOG_URL": f"sqlite:///{data / 'events.db'}",
        "EMPORIUM_SEARCH_URL": f"tantivy:///{data / 'search'}",
        "EMPORIUM_CACHE_URL": "memory://",
        "EMPORIUM_DATABASE_URL": f"sqlite:///{db}",
        "EMPORIUM_RECOMMENDATIONS_URL": f"sqlite:///{data / 'recommendations.db'}",
        "EMPORIUM_LOG_FORMAT": "console",
        "EMPORIUM_RATE_LIMIT_STOREFRONT": "1000000/second",
    }
    return ServiceProcess(env=env, port=free_port(), log=tmp_path / "serve.log"), db
