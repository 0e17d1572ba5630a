"""The app's callers with keys: suppliers (``emp_`` keys) and storefronts (``sfk_`` keys).

Ingest issues every key (it onboards suppliers and storefronts) and answers, for any route of any
context, whose key a request carries: ``Identities.identify`` is the ``kernel.http.callers.Identify``
the app wires into its routes. It runs per request, so it must be cheap: a key seen valid is remembered
for ``KEY_CACHE_TTL_S``, owner records are cached by key id as long (a rotated or new key is seen by
every server within that time; this process sees its own rotations at once), and any other key is
checked with one HMAC: a wrong key for a known key id costs microseconds. A key still stored with the
legacy scrypt hash is checked with scrypt, one at a time per process (a flood of wrong guesses cannot
take more than one core), and on success its HMAC hash replaces the scrypt one.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from typing import Final

from cachetools import TTLCache

from ingest.auth import (
    STOREFRONT_KEY_PREFIX,
    SUPPLIER_KEY_PREFIX,
    ApiKey,
    KeyHasher,
    is_legacy_hash,
    new_api_key,
    parse_api_key,
    verify_secret,
)
from ingest.errors import Conflict, InvalidRequest, NotFound
from ingest.model import StorefrontRecord, SupplierRecord
from ingest.store import IngestStore, StorefrontExists
from kernel.http.callers import STOREFRONT, SUPPLIER, Caller

KEY_CACHE_TTL_S: Final = 5.0
KEY_CACHE_ENTRIES: Final = 10_000
OWNER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
OWNER_ID_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"

Owner = SupplierRecord | StorefrontRecord


class Identities:
    def __init__(self, store: IngestStore, hasher: KeyHasher) -> None:
        self.store = store
        self.hasher = hasher
        self._owners: TTLCache[tuple[str, str], Owner | None] = TTLCache(KEY_CACHE_ENTRIES, KEY_CACHE_TTL_S)
        # keys seen valid lately -> (owner, until): the common request pays one dict lookup
        self._verified: dict[str, tuple[Caller, float]] = {}
        self._legacy_checks = asyncio.Semaphore(1)

    # keys ------------------------------------------------------------------------------------

    def new_key(self, prefix: str) -> tuple[ApiKey, str]:
        """A fresh key and the hash to store for it."""
        key = new_api_key(prefix)
        return key, self.hasher.hash(key.secret)

    def forget(self, kind: str, key_id: str) -> None:
        """Drop a cached owner and the keys seen valid with that key id (after a rotation here)."""
        self._owners.pop((kind, key_id), None)
        for token in [t for t in self._verified if f"_{key_id}_" in t]:
            del self._verified[token]

    async def identify(self, token: str) -> Caller | None:
        """The owner of ``token``, or None when it is not a valid key of any kind."""
        seen = self._verified.get(token)
        if seen is not None and seen[1] > time.monotonic():
            return seen[0]
        caller = await self._check(token)
        if caller is not None:
            if len(self._verified) >= KEY_CACHE_ENTRIES:
                self._verified.clear()
            self._verified[token] = (caller, time.monotonic() + KEY_CACHE_TTL_S)
        return caller

    async def _check(self, token: str) -> Caller | None:
        kind = SUPPLIER if token.startswith(SUPPLIER_KEY_PREFIX + "_") else STOREFRONT
        key = parse_api_key(token, SUPPLIER_KEY_PREFIX if kind == SUPPLIER else STOREFRONT_KEY_PREFIX)
        if key is None:
            return None
        owner = await self._owner(kind, key.key_id)
        if owner is None:
            return None
        if not self.hasher.matches(key.secret, owner.key_hash):
            if not (is_legacy_hash(owner.key_hash) and await self._upgrade(kind, key, owner)):
                return None
        return Caller(kind, owner.supplier_id if isinstance(owner, SupplierRecord) else owner.storefront_id)

    async def _owner(self, kind: str, key_id: str) -> Owner | None:
        try:
            return self._owners[(kind, key_id)]
        except KeyError:  # not cached, or expired
            pass
        owner: Owner | None
        if kind == SUPPLIER:
            owner = await self.store.supplier_by_key_id(key_id)
        else:
            owner = await self.store.storefront_by_key_id(key_id)
        self._owners[(kind, key_id)] = owner
        return owner

    async def _upgrade(self, kind: str, key: ApiKey, owner: Owner) -> bool:
        """Check a key against its legacy scrypt hash; if right, store its HMAC hash instead."""
        async with self._legacy_checks:
            if not await asyncio.to_thread(verify_secret, key.secret, owner.key_hash):
                return False
        if kind == SUPPLIER:
            new_hash = self.hasher.hash(key.secret)
            await self.store.upgrade_key_hash(key.key_id, owner.key_hash, new_hash)
            self.forget(kind, key.key_id)
        return True

    # storefronts -----------------------------------------------------------------------------

    async def add_storefront(
        self, storefront_id: str, name: str | None = None
    ) -> tuple[StorefrontRecord, str]:
        """Register a storefront; return it with its key (shown once, stored hashed)."""
        if not OWNER_ID.match(storefront_id):
            raise InvalidRequest(f"storefront_id must be {OWNER_ID_RULE}")
        key, key_hash = self.new_key(STOREFRONT_KEY_PREFIX)
        record = StorefrontRecord(
            storefront_id=storefront_id,
            name=(name or storefront_id).strip()[:200] or storefront_id,
            key_id=key.key_id,
            key_hash=key_hash,
            created_at=datetime.now(UTC),
        )
        try:
            await self.store.add_storefront(record)
        except StorefrontExists:
            raise Conflict(f"storefront {storefront_id!r} already exists") from None
        return record, key.token

    async def rotate_storefront_key(self, storefront_id: str) -> str:
        """A new key for the storefront (the old one stops working)."""
        record = await self.store.get_storefront(storefront_id)
        if record is None:
            raise NotFound(f"unknown storefront {storefront_id!r}")
        key, key_hash = self.new_key(STOREFRONT_KEY_PREFIX)
        await self.store.replace_storefront_key(storefront_id, key.key_id, key_hash)
        self.forget(STOREFRONT, record.key_id)
        return key.token
