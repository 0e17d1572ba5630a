"""One contract suite for the recommendations read model, run against every adapter (SQLite, Cassandra).

Cassandra comes from the ``cassandra_url`` fixture (Cassandra 2.1 started by the local stack, or the
server named by EMPORIUM_RECOMMENDATIONS_URL); this session's tables live in a keyspace of their own,
created by the store and dropped at the end. Tests isolate themselves by unique user ids; the ones that
write the every-region popularity list (which decides which per-user lists are current, for every user)
get a store of their own (``fresh_store``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from emporium.adapters import RECOMMENDATIONS_STORE
from read_models.recommendations import (
    PopularProducts,
    Recommendations,
    RecommendationsStore,
    RecommendationsStoreError,
    RelatedProducts,
)
from read_models.recommendations.cassandra import CassandraRecommendationsStore, parse_cassandra_url


def _with_keyspace(url: str, keyspace: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{keyspace}"))


def _drop_keyspace(url: str) -> None:
    from cassandra.cluster import Cluster

    cfg = parse_cassandra_url(url)
    cluster = Cluster(list(cfg.hosts), port=cfg.port, protocol_version=cfg.protocol_version)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {cfg.keyspace}")
    finally:
        cluster.shutdown()


def _new_cassandra_url(cassandra_url: str) -> str:
    return _with_keyspace(cassandra_url, f"emporium_recs_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def cassandra_test_url(cassandra_url: str) -> Iterator[str]:
    url = _new_cassandra_url(cassandra_url)
    yield url
    _drop_keyspace(url)


@asynccontextmanager
async def _opened(url: str) -> AsyncIterator[RecommendationsStore]:
    opened = RECOMMENDATIONS_STORE.open(url)
    await opened.start()
    try:
        yield opened
    finally:
        await opened.close()


ADAPTERS = ["sqlite", pytest.param("cassandra", marks=pytest.mark.cluster)]


@pytest.fixture(scope="session", params=ADAPTERS)
async def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RecommendationsStore]:
    """One store per adapter for the session (a Cassandra connect costs about a second)."""
    if request.param == "cassandra":
        url = request.getfixturevalue("cassandra_test_url")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('recs') / 'recommendations.db'}"
    async with _opened(url) as opened:
        yield opened


@pytest.fixture(params=ADAPTERS)
async def fresh_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RecommendationsStore]:
    """A store of its own, for the tests that write the every-region popularity list: it decides which
    per-user lists are current, for every user of the store."""
    if request.param == "sqlite":
        async with _opened(f"sqlite:///{tmp_path / 'recommendations.db'}") as opened:
            yield opened
        return
    url = _new_cassandra_url(request.getfixturevalue("cassandra_url"))
    try:
        async with _opened(url) as opened:
            yield opened
    finally:
        await asyncio.to_thread(_drop_keyspace, url)


def user() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


def recs(
    user_id: str, product_ids: list[str], revision: int, model: str = "als", at: datetime | None = None
) -> Recommendations:
    return Recommendations(
        user_id=user_id,
        product_ids=tuple(product_ids),
        model=model,
        revision=revision,
        generated_at=at,
    )


async def test_put_then_get_keeps_rank_order_and_metadata(store: RecommendationsStore) -> None:
    uid = user()
    at = datetime(2025, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)
    ranked = [f"p{n}" for n in (9, 3, 7, 1, 5, 2, 8, 4, 6, 10, 11, 12)]  # not sorted: rank order must hold
    assert await store.put_many([recs(uid, ranked, 1, model="als-v2", at=at)]) == 1
    got = await store.get(uid)
    assert got == recs(uid, ranked, 1, model="als-v2", at=at)


async def test_unknown_user_is_none(store: RecommendationsStore) -> None:
    assert await store.get(user()) is None


async def test_newer_revision_replaces_and_fewer_items_leave_no_leftovers(
    store: RecommendationsStore,
) -> None:
    uid = user()
    await store.put_many([recs(uid, ["a", "b", "c", "d", "e"], 1)])
    assert await store.put_many([recs(uid, ["x", "y"], 2, model="cooc")]) == 1
    got = await store.get(uid)
    assert got is not None and got.product_ids == ("x", "y") and got.model == "cooc" and got.revision == 2
    assert await store.put_many([recs(uid, [], 3)]) == 1
    got = await store.get(uid)
    assert got is not None and got.product_ids == () and got.revision == 3


async def test_stale_revision_is_ignored(store: RecommendationsStore) -> None:
    uid = user()
    await store.put_many([recs(uid, ["new"], 5)])
    assert await store.put_many([recs(uid, ["old"], 4), recs(uid, ["older"], 1)]) == 0
    got = await store.get(uid)
    assert got is not None and got.product_ids == ("new",) and got.revision == 5


async def test_duplicate_event_is_idempotent(store: RecommendationsStore) -> None:
    uid = user()
    entry = recs(uid, ["a", "b"], 3)
    assert await store.put_many([entry]) == 1
    assert await store.put_many([entry]) == 0
    assert await store.put_many([recs(uid, ["other"], 3)]) == 0  # same revision: first write stays
    assert await store.get(uid) == entry


async def test_out_of_order_writes_end_at_the_newest(store: RecommendationsStore) -> None:
    uids = [user() for _ in range(20)]
    for revision in (3, 1, 4, 2, 5, 5, 1):
        await store.put_many([recs(uid, [f"{uid}-r{revision}"], revision) for uid in uids])
    for uid in uids:
        got = await store.get(uid)
        assert got is not None and got.product_ids == (f"{uid}-r5",) and got.revision == 5


async def test_concurrent_writers_of_one_user_keep_the_newest(store: RecommendationsStore) -> None:
    """Competing projectors (a rebuild next to the live one): the CAS never lets an older write win."""
    uid = user()
    await asyncio.gather(*(store.put_many([recs(uid, [f"r{n}"], n)]) for n in range(1, 16)))
    got = await store.get(uid)
    assert got is not None and got.revision == 15 and got.product_ids == ("r15",)


async def test_many_users_in_one_batch(store: RecommendationsStore) -> None:
    entries = [recs(user(), [f"p{n}", f"q{n}"], 1) for n in range(300)]
    assert await store.put_many(entries) == 300
    for entry in entries[::37]:
        assert await store.get(entry.user_id) == entry


# Related (per product) and popular (per region) lists: the same rules, one parametrized suite --------

Ranked = RelatedProducts | PopularProducts


class Lists:
    """One kind of keyed list on a store: how to build an entry, write a batch and read one back."""

    def __init__(self, store: RecommendationsStore, kind: str) -> None:
        self.store, self.kind = store, kind

    def entry(
        self, key: str, product_ids: list[str], revision: int, model: str = "m", at: datetime | None = None
    ) -> Ranked:
        values = {"product_ids": tuple(product_ids), "model": model, "revision": revision, "generated_at": at}
        if self.kind == "related":
            return RelatedProducts(product_id=key, **values)
        return PopularProducts(region=key, **values)

    async def put(self, items: list[Ranked]) -> int:
        if self.kind == "related":
            return await self.store.put_related([i for i in items if isinstance(i, RelatedProducts)])
        return await self.store.put_popular([i for i in items if isinstance(i, PopularProducts)])

    async def get(self, key: str) -> Ranked | None:
        if self.kind == "related":
            return await self.store.get_related(key)
        return await self.store.get_popular(key)


@pytest.fixture(params=["related", "popular"])
def lists(request: pytest.FixtureRequest, store: RecommendationsStore) -> Lists:
    return Lists(store, request.param)


def key() -> str:
    return f"k-{uuid.uuid4().hex[:12]}"


async def test_list_round_trip_keeps_rank_order_and_metadata(lists: Lists) -> None:
    k = key()
    at = datetime(2025, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)
    ranked = [f"shop:{n}" for n in (9, 3, 7, 1, 5)]
    assert await lists.put([lists.entry(k, ranked, 1, model="bought_together", at=at)]) == 1
    assert await lists.get(k) == lists.entry(k, ranked, 1, model="bought_together", at=at)
    assert await lists.get(key()) is None


async def test_list_revision_rule(lists: Lists) -> None:
    """Newer replaces the whole list; stale, repeated and same-revision writes change nothing."""
    k = key()
    await lists.put([lists.entry(k, ["a", "b", "c"], 2)])
    assert await lists.put([lists.entry(k, ["old"], 1), lists.entry(k, ["same"], 2)]) == 0
    assert await lists.get(k) == lists.entry(k, ["a", "b", "c"], 2)
    assert await lists.put([lists.entry(k, ["x"], 3)]) == 1
    assert await lists.get(k) == lists.entry(k, ["x"], 3)
    assert await lists.put([lists.entry(k, [], 4)]) == 1
    assert await lists.get(k) == lists.entry(k, [], 4)


async def test_list_concurrent_writers_keep_the_newest(lists: Lists) -> None:
    k = key()
    await asyncio.gather(*(lists.put([lists.entry(k, [f"r{n}"], n)]) for n in (3, 1, 8, 2, 8, 5)))
    assert await lists.get(k) == lists.entry(k, ["r8"], 8)


async def test_list_batches_of_many_keys(lists: Lists) -> None:
    entries = [lists.entry(key(), [f"p{n}"], 1) for n in range(120)]
    assert await lists.put(entries) == 120
    for entry in entries[::29]:
        found = await lists.get(entry.product_id if isinstance(entry, RelatedProducts) else entry.region)
        assert found == entry


async def test_every_region_list_is_the_empty_region(fresh_store: RecommendationsStore) -> None:
    """Region ``""`` (every region) is a key of its own, apart from any named region."""
    run = 10
    everywhere = PopularProducts(region="", product_ids=("a", "b"), model="popularity", revision=run)
    local = PopularProducts(region=f"r{run}", product_ids=("c",), model="popularity", revision=run)
    await fresh_store.put_popular([everywhere, local])
    assert await fresh_store.get_popular("") == everywhere
    assert await fresh_store.get_popular(f"r{run}") == local


def popular(region: str, revision: int) -> PopularProducts:
    return PopularProducts(region=region, product_ids=("pop",), model="popularity", revision=revision)


async def test_only_the_latest_runs_user_lists_are_served(fresh_store: RecommendationsStore) -> None:
    """A run publishes the every-region popularity list always and per-user lists only when ALS won: a
    user's list older than that popularity list is from an earlier run and is not served any more."""
    store, winner, other = fresh_store, user(), user()
    await store.put_many([recs(winner, ["w"], 5), recs(other, ["o"], 5)])
    await store.put_popular([popular("", 5)])  # the same run: its lists are current
    assert await store.get(winner) == recs(winner, ["w"], 5)

    await store.put_popular([popular("", 6), popular("south", 9)])  # run 6: ALS lost, popularity only
    assert await store.get(winner) is None and await store.get(other) is None
    assert await store.put_many([recs(winner, ["w"], 5)]) == 0  # a replayed old list stays superseded
    assert await store.get(winner) is None

    await store.put_many([recs(winner, ["w7"], 7)])  # run 7: ALS won again (the lists come first) ...
    assert await store.get(winner) == recs(winner, ["w7"], 7)
    await store.put_popular([popular("", 7)])  # ... then its popularity
    assert await store.get(winner) == recs(winner, ["w7"], 7)
    assert await store.get(other) is None  # not in run 7's lists: popularity, like a new user


async def test_regional_popularity_alone_supersedes_nothing(fresh_store: RecommendationsStore) -> None:
    uid = user()
    await fresh_store.put_many([recs(uid, ["mine"], 3)])
    await fresh_store.put_popular([popular("north", 8)])  # no every-region list yet
    assert await fresh_store.get(uid) == recs(uid, ["mine"], 3)


async def test_kinds_do_not_share_keys(store: RecommendationsStore) -> None:
    k = key()
    await store.put_many([recs(k, ["u"], 1)])
    await store.put_related([RelatedProducts(product_id=k, product_ids=("r",), model="m", revision=1)])
    await store.put_popular([PopularProducts(region=k, product_ids=("p",), model="m", revision=1)])
    user_entry, related, popular = await store.get(k), await store.get_related(k), await store.get_popular(k)
    assert user_entry is not None and user_entry.product_ids == ("u",)
    assert related is not None and related.product_ids == ("r",)
    assert popular is not None and popular.product_ids == ("p",)


async def test_ping(store: RecommendationsStore) -> None:
    await store.ping()


def test_cassandra_url_parsing() -> None:
    cfg = parse_cassandra_url(
        "cassandra://app:s%40cret@10.0.0.1:9142,10.0.0.2:9142/shop?protocol_version=4"
        "&replication=NetworkTopologyStrategy:dc1=3,dc2=2&consistency=quorum&local_dc=dc1"
    )
    assert cfg.hosts == ("10.0.0.1", "10.0.0.2") and cfg.port == 9142 and cfg.keyspace == "shop"
    assert cfg.protocol_version == 4 and cfg.consistency == "QUORUM" and cfg.local_dc == "dc1"
    assert cfg.replication == {"class": "NetworkTopologyStrategy", "dc1": "3", "dc2": "2"}
    assert (cfg.username, cfg.password) == ("app", "s@cret")
    default = parse_cassandra_url("cassandra://db/recs")
    assert default.port == 9042 and default.protocol_version == 3
    assert default.replication == {"class": "SimpleStrategy", "replication_factor": "1"}
    for bad in (
        "cassandra://db/",  # no keyspace
        "cassandra://db/bad-name",
        "cassandra://db/ks?replication=SimpleStrategy:0",
        "cassandra://db/ks?replication=Everywhere",
        "cassandra://db/ks?replication=NetworkTopologyStrategy:dc1=x",
        "cassandra://db/ks?colour=blue",
        "cassandra://a:1,b:2/ks",
    ):
        with pytest.raises(ValueError):
            parse_cassandra_url(bad)


async def test_unreachable_cassandra_is_a_store_error() -> None:
    store = CassandraRecommendationsStore("cassandra://127.0.0.1:1/nowhere?timeout=1")
    with pytest.raises(RecommendationsStoreError):
        await store.start()
    with pytest.raises(RecommendationsStoreError):
        await store.get("u1")
