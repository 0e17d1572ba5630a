"""API keys of suppliers and storefronts: cheap checks (HMAC), old scrypt keys still accepted, kinds apart.

Finding 7 of issue 13: a wrong key for a known key id cost a 45 ms scrypt hash, so 46 requests a second
saturated both cores. Now it costs one HMAC."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from emporium.adapters import INGEST_STORE
from ingest.auth import KeyHasher, hash_secret, load_key_secret, new_api_key, parse_api_key
from ingest.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthorized
from ingest.identities import Identities
from ingest.service import IngestService
from ingest.store import IngestStore
from kernel.http.callers import Caller

SECRET = b"a-server-secret-of-32-bytes-long"
WRONG_KEY_BUDGET_S = 0.001


class NoLog:
    async def publish(self, topic: str, messages: object) -> None:
        return None


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[IngestStore]:
    store = INGEST_STORE.open(f"sqlite:///{tmp_path / 'ingest.db'}")
    await store.start()
    yield store
    await store.close()


@pytest.fixture
def service(store: IngestStore) -> IngestService:
    return IngestService(store, NoLog(), key_secret=SECRET)  # type: ignore[arg-type]


def test_keys_are_hmac_hashed_under_the_server_secret() -> None:
    hasher, other = KeyHasher(SECRET), KeyHasher(b"another-server-secret-32-bytes!!")
    key = new_api_key("sfk")
    stored = hasher.hash(key.secret)
    assert stored.startswith("hmac-sha256$") and key.secret not in stored
    assert hasher.matches(key.secret, stored)
    assert not hasher.matches(key.secret + "x", stored)
    assert not other.matches(key.secret, stored)  # a stolen table is useless without the server secret
    assert not hasher.matches(key.secret, hash_secret(key.secret))  # scrypt is checked elsewhere
    assert parse_api_key(key.token, "sfk") == key and parse_api_key(key.token) is None


async def test_a_wrong_key_for_a_known_key_id_costs_microseconds(service: IngestService) -> None:
    _, token = await service.add_supplier("acme")
    wrong = token[:-4] + "AAAA"
    assert await service.identities.identify(wrong) is None  # the owner is looked up (and cached) once
    rounds = 200
    started = time.perf_counter()
    for _ in range(rounds):
        assert await service.identities.identify(wrong) is None
    per_check = (time.perf_counter() - started) / rounds
    assert per_check < WRONG_KEY_BUDGET_S, f"{per_check * 1e6:.0f} us per wrong key"
    with pytest.raises(Unauthorized):
        await service.authenticate("acme", wrong)


async def test_an_old_scrypt_key_still_works_and_is_rehashed(
    service: IngestService, store: IngestStore
) -> None:
    record, token = await service.add_supplier("legacy")
    key = parse_api_key(token)
    assert key is not None
    await store.replace_key("legacy", key.key_id, hash_secret(key.secret))  # as issued before HMAC
    service.identities.forget("supplier", key.key_id)
    assert await Identities(store, KeyHasher(SECRET)).identify(token[:-2] + "zz") is None
    assert await service.identities.identify(token) == Caller("supplier", "legacy")
    upgraded = await store.get_supplier("legacy")
    assert upgraded is not None and upgraded.key_hash.startswith("hmac-sha256$")
    fresh = Identities(store, KeyHasher(SECRET))  # another server process: no cache
    assert await fresh.identify(token) == Caller("supplier", "legacy")
    await service.authenticate("legacy", token)
    assert record.key_id == key.key_id


async def test_storefront_keys_are_a_kind_of_their_own(service: IngestService) -> None:
    _, supplier_key = await service.add_supplier("acme")
    record, shop_key = await service.identities.add_storefront("shop-1", "Shop One")
    assert shop_key.startswith("sfk_") and record.name == "Shop One"
    assert await service.identities.identify(shop_key) == Caller("storefront", "shop-1")
    assert await service.identities.identify(supplier_key) == Caller("supplier", "acme")
    assert await service.identities.identify("sfk_" + supplier_key[4:]) is None
    with pytest.raises(Forbidden, match="storefront key"):
        await service.authenticate("acme", shop_key)
    with pytest.raises(Conflict):
        await service.identities.add_storefront("shop-1")
    with pytest.raises(InvalidRequest):
        await service.identities.add_storefront("bad/id")
    rotated = await service.identities.rotate_storefront_key("shop-1")
    assert await service.identities.identify(rotated) == Caller("storefront", "shop-1")
    assert await service.identities.identify(shop_key) is None
    with pytest.raises(NotFound):
        await service.identities.rotate_storefront_key("nobody")


def test_the_embedded_server_secret_is_made_once_and_private(tmp_path: Path) -> None:
    first = load_key_secret(None, tmp_path)
    assert len(first) >= 32 and load_key_secret(None, tmp_path) == first
    assert stat.S_IMODE(os.stat(tmp_path / "key-secret").st_mode) == 0o600
    assert (
        load_key_secret("configured-secret-of-enough-bytes", tmp_path) == b"configured-secret-of-enough-bytes"
    )
