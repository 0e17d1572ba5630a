"""Choose the reservation engine from the settings' URLs (one URL per port).

``mysql://`` database + ``redis://`` cache -> ClusterEngine (Redis fast path, MySQL truth);
``sqlite:///`` database -> SqliteEngine (embedded; the cache URL is not needed). A MySQL database
with an in-process cache is refused: MySQL alone is the slow path this design exists to avoid,
and a per-process cache cannot be shared by several API servers.
"""

from __future__ import annotations

from typing import Any

from inventory.cluster import ClusterEngine
from inventory.sqlite import SqliteEngine
from kernel.database import MysqlTarget, SqliteTarget, parse_database_url
from kernel.settings import Settings


class InventoryConfigError(ValueError):
    pass


def build_engine(settings: Settings, **options: Any) -> ClusterEngine | SqliteEngine:
    target = parse_database_url(settings.database_url)
    if isinstance(target, SqliteTarget):
        return SqliteEngine(target.path, **options)
    assert isinstance(target, MysqlTarget)
    if not settings.cache_url.startswith(("redis://", "rediss://", "unix://")):
        raise InventoryConfigError(
            "inventory on MySQL needs a Redis fast path: set EMPORIUM_CACHE_URL=redis://HOST:PORT/DB "
            f"(got {settings.cache_url!r}), or use a sqlite:/// database for the embedded engine"
        )
    return ClusterEngine(settings.cache_url, target, **options)
