"""Cluster reservation engine: Redis fast path (Lua, micro-batched) + MySQL/MariaDB truth (group
commit), reconcile. ``engine`` composes the parts and states the crash invariants."""

from inventory.cluster.engine import ClusterEngine
from inventory.schema import migrate_mysql

__all__ = ["ClusterEngine", "migrate_mysql"]
