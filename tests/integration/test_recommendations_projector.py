"""Embedded stack below HTTP: RecommendationsComputed events -> SQLite event log -> projector -> SQLite
recommendations store. Real adapters, no fakes: redelivery, out-of-order events, poison messages,
invalid user ids and a replay into a fresh store all end at the newest state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from emporium.adapters import RECOMMENDATIONS_STORE
from kernel.contracts.events import (
    RECOMMENDATIONS_TOPIC,
    Envelope,
    PopularProductsComputed,
    RecommendationsComputed,
    RelatedProductsComputed,
    new_event,
)
from kernel.eventlog.port import OutgoingMessage
from kernel.eventlog.processing import publish_events
from kernel.eventlog.projection import ProjectorMetrics, ProjectorTask
from kernel.eventlog.sqlite import SqliteEventLog
from read_models.recommendations import RecommendationsStore
from read_models.recommendations_projector import (
    RECOMMENDATIONS_GROUP,
    RecommendationsProjection,
    recommendations_projector,
)


def computed(user_id: str, product_ids: list[str], revision: int, model: str = "als") -> Envelope:
    payload = RecommendationsComputed(user_id=user_id, product_ids=tuple(product_ids), model=model)
    return new_event(payload, key=user_id, revision=revision, producer="analytics.als")


class Stack:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.log = SqliteEventLog.from_url(f"sqlite:///{path / 'events.db'}")
        self.store: RecommendationsStore = RECOMMENDATIONS_STORE.open(f"sqlite:///{path / 'recs.db'}")
        self.metrics = ProjectorMetrics.of(CollectorRegistry())
        self.task = recommendations_projector(self.log, self.store, metrics=self.metrics, poll_timeout=0.05)

    async def publish(self, events: list[Envelope]) -> None:
        await publish_events(self.log, events)

    async def settle(self, task: ProjectorTask | None = None) -> None:
        await (task or self.task).wait_caught_up(poll_s=0.005, timeout_s=30)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    s = Stack(tmp_path)
    await s.log.start()
    await s.store.start()
    s.task.start()
    try:
        yield s
    finally:
        await s.task.stop()
        await s.store.close()
        await s.log.close()


async def test_events_reach_the_store_in_rank_order(stack: Stack) -> None:
    await stack.publish([computed(f"user-{n}", [f"p{n}-{r}" for r in range(10)], 1) for n in range(200)])
    await stack.settle()
    for n in (0, 57, 199):
        got = await stack.store.get(f"user-{n}")
        assert got is not None and got.product_ids == tuple(f"p{n}-{r}" for r in range(10))
        assert got.model == "als" and got.revision == 1 and got.generated_at is not None


async def test_out_of_order_and_repeated_events_keep_the_newest(stack: Stack) -> None:
    events = [
        computed("u1", ["a", "b", "c"], 2),
        computed("u1", ["z"], 1),
        computed("u1", ["a", "b", "c"], 2),
    ]
    await stack.publish(events)
    await stack.settle()
    await stack.publish([computed("u1", ["old"], 1)])  # a late redelivery in a later batch
    await stack.settle()
    got = await stack.store.get("u1")
    assert got is not None and got.product_ids == ("a", "b", "c") and got.revision == 2
    await stack.publish([computed("u1", ["d"], 3, model="cooc")])  # fewer items, newer revision
    await stack.settle()
    got = await stack.store.get("u1")
    assert got is not None and got.product_ids == ("d",) and got.model == "cooc"


async def test_poison_and_invalid_user_ids_never_stop_the_projector(stack: Stack) -> None:
    await stack.log.publish(RECOMMENDATIONS_TOPIC, [OutgoingMessage("x", b"{not json")])
    await stack.publish([computed("bad user/id", ["p"], 1), computed("ok-user", ["p1"], 1)])
    await stack.settle()
    assert await stack.store.get("ok-user") is not None
    assert await stack.store.get("bad user/id") is None
    assert stack.task.processor.stats.dead_lettered == 1
    projection = stack.task.projection
    assert isinstance(projection, RecommendationsProjection) and projection.rejected == 1


async def test_replay_into_a_fresh_store_rebuilds_the_same_state(stack: Stack) -> None:
    await stack.publish([computed(f"r{n}", [f"v{rev}"], rev) for rev in (1, 3, 2) for n in range(50)])
    await stack.settle()
    fresh = RECOMMENDATIONS_STORE.open(f"sqlite:///{stack.path / 'rebuilt.db'}")
    await fresh.start()
    replay = recommendations_projector(
        stack.log, fresh, metrics=stack.metrics, group=f"{RECOMMENDATIONS_GROUP}.rebuild", replay=True
    )
    replay.start()
    try:
        await stack.settle(replay)
        for n in range(50):
            live, rebuilt = await stack.store.get(f"r{n}"), await fresh.get(f"r{n}")
            assert live is not None and live == rebuilt and live.product_ids == ("v3",)
    finally:
        await replay.stop()
        await fresh.close()


async def test_related_and_popular_events_reach_their_lists(stack: Stack) -> None:
    def related(product_id: str, ids: list[str], revision: int) -> Envelope:
        payload = RelatedProductsComputed(product_id=product_id, product_ids=tuple(ids))
        return new_event(payload, key=f"related:{product_id}", revision=revision, producer="t")

    def popular(region: str, ids: list[str], revision: int) -> Envelope:
        payload = PopularProductsComputed(region=region, product_ids=tuple(ids))
        return new_event(payload, key=f"popular:{region}", revision=revision, producer="t")

    await stack.publish(
        [related("s:1", ["s:2", "s:3"], 2), related("s:1", ["old"], 1), popular("", ["s:9"], 1)]
    )
    await stack.publish([popular("south", ["s:4"], 1), popular("", ["s:8", "s:7"], 2), popular("", ["x"], 1)])
    await stack.settle()
    found = await stack.store.get_related("s:1")
    assert found is not None and found.product_ids == ("s:2", "s:3") and found.model == "bought_together"
    everywhere, south = await stack.store.get_popular(""), await stack.store.get_popular("south")
    assert everywhere is not None and everywhere.product_ids == ("s:8", "s:7") and everywhere.revision == 2
    assert south is not None and south.product_ids == ("s:4",) and south.model == "popularity"
