"""Ingest state port: suppliers and storefronts (the app's callers, with their key hashes), per-product
fingerprints and revisions, feed reports.

Adapters: SQLite (embedded) and MySQL/MariaDB (cluster) in ``ingest.store_dialects``, over the SQL they
share in ``ingest.store_sql`` (chosen by ``emporium.adapters``); they pass
tests/contract/test_ingest_store.py. Schema is created and migrated on ``start``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ingest.model import FeedReport, ProductState, StorefrontRecord, SupplierRecord


class SupplierExists(Exception):
    """A supplier with this id is already registered."""


class StorefrontExists(Exception):
    """A storefront with this id is already registered."""


class IngestStore(Protocol):
    async def start(self) -> None:
        """Connect, apply pending schema migrations, and clean up after a crashed importer: release the
        import leases that expired or whose holder process is gone (``ingest.leases``) and mark
        ``failed`` every report left ``processing`` without a live lease."""
        ...

    async def add_supplier(self, supplier: SupplierRecord) -> None:
        """Register a supplier; raise SupplierExists if the id is taken."""
        ...

    async def get_supplier(self, supplier_id: str) -> SupplierRecord | None: ...

    async def supplier_by_key_id(self, key_id: str) -> SupplierRecord | None: ...

    async def replace_key(self, supplier_id: str, key_id: str, key_hash: str) -> None:
        """Rotate a supplier's API key (the old one stops working), or store a new hash of the same key."""
        ...

    async def upgrade_key_hash(self, key_id: str, old_hash: str, new_hash: str) -> None:
        """Store ``new_hash`` for the supplier key ``key_id`` if it still has ``old_hash`` (a rotation
        in between wins)."""
        ...

    async def add_storefront(self, storefront: StorefrontRecord) -> None:
        """Register a storefront; raise StorefrontExists if the id is taken."""
        ...

    async def get_storefront(self, storefront_id: str) -> StorefrontRecord | None: ...

    async def storefront_by_key_id(self, key_id: str) -> StorefrontRecord | None: ...

    async def replace_storefront_key(self, storefront_id: str, key_id: str, key_hash: str) -> None:
        """Rotate a storefront's API key, or store a new hash of the same key."""
        ...

    async def acquire_import_lease(self, supplier_id: str, owner: str, ttl_s: float) -> bool:
        """Take (or renew) the supplier's import lease; False while another owner holds a live one.

        Two imports of one supplier at once would both read revision N and both publish N+1
        with different content; the lease serializes them across processes (CLI and servers).
        """
        ...

    async def release_import_lease(self, supplier_id: str, owner: str) -> None: ...

    async def product_states(self, supplier_id: str, product_ids: Sequence[str]) -> dict[str, ProductState]:
        """Stored state of those of ``product_ids`` ingest has seen (removed ones included)."""
        ...

    async def live_products(self, supplier_id: str) -> list[ProductState]:
        """Every product of the supplier that is not removed."""
        ...

    async def save_product_states(self, supplier_id: str, states: Sequence[ProductState]) -> None:
        """Upsert, atomically for the whole batch."""
        ...

    async def save_feed(self, report: FeedReport) -> None:
        """Insert or replace the report of ``report.feed_id``."""
        ...

    async def get_feed(self, supplier_id: str, feed_id: str) -> FeedReport | None:
        """The report, only if the feed belongs to ``supplier_id``."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
