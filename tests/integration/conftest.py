"""Private servers a chaos test may flush, kill and restart (never the shared session servers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from inventory_support import PrivateServer, private_mariadb, private_redis


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[PrivateServer]:
    server = private_redis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def own_mariadb(tmp_path: Path) -> AsyncIterator[PrivateServer]:
    server = private_mariadb(tmp_path / "mariadb")
    server.start(timeout=120)
    try:
        yield server
    finally:
        server.stop()
