"""``GET /v1/recommendations/{user_id}`` through the real app (create_app on a temp data dir: SQLite event
log, SQLite recommendations store, in-process projector)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from kernel.contracts.events import RECOMMENDATIONS_TOPIC, Envelope, RecommendationsComputed, new_event
from kernel.eventlog.port import EventLog
from kernel.eventlog.processing import publish_events
from kernel.settings import Settings
from read_models.recommendations_projector import RECOMMENDATIONS_GROUP


def computed(user_id: str, product_ids: list[str], revision: int, model: str = "als") -> Envelope:
    payload = RecommendationsComputed(user_id=user_id, product_ids=tuple(product_ids), model=model)
    return new_event(payload, key=user_id, revision=revision, producer="analytics.als")


class Shop:
    def __init__(self, client: AsyncTestClient, event_log: EventLog) -> None:
        self.client = client
        self.event_log = event_log

    async def publish(self, events: list[Envelope]) -> None:
        await publish_events(self.event_log, events)
        for _ in range(2000):
            if not await self.event_log.lag(RECOMMENDATIONS_TOPIC, RECOMMENDATIONS_GROUP):
                return
            await asyncio.sleep(0.005)
        raise AssertionError("recommendations projector did not catch up")


@pytest.fixture(scope="module")
async def shop(
    tmp_path_factory: pytest.TempPathFactory,
    embedded_settings: Callable[..., Settings],
    running_app: Callable[..., AbstractAsyncContextManager[Any]],
) -> AsyncIterator[Shop]:
    """One app for the module (its start and stop cost seconds); tests use distinct user ids."""
    settings = embedded_settings(tmp_path_factory.mktemp("recs-e2e") / "data")
    async with running_app(settings, own_event_log=True) as app:
        yield Shop(app.client, app.event_log)


async def test_recommendations_follow_the_newest_event(shop: Shop) -> None:
    await shop.publish([computed("shopper-1", ["p3", "p1", "p2"], 1), computed("shopper-2", ["p9"], 1)])
    response = await shop.client.get("/v1/recommendations/shopper-1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == "shopper-1" and body["product_ids"] == ["p3", "p1", "p2"]
    assert body["model"] == "als" and body["generated_at"]
    limited = await shop.client.get("/v1/recommendations/shopper-1", params={"limit": 2})
    assert limited.json()["product_ids"] == ["p3", "p1"]

    await shop.publish([computed("shopper-1", ["p7"], 3, model="cooc"), computed("shopper-1", ["old"], 2)])
    body = (await shop.client.get("/v1/recommendations/shopper-1")).json()
    assert body["product_ids"] == ["p7"] and body["model"] == "cooc"


async def test_unknown_user_gets_an_empty_list(shop: Shop) -> None:
    response = await shop.client.get("/v1/recommendations/nobody-yet")
    assert response.status_code == 200
    assert response.json() == {"user_id": "nobody-yet", "product_ids": []}


async def test_bad_input_is_json_400(shop: Shop) -> None:
    for path in (
        "/v1/recommendations/" + "a" * 129,
        "/v1/recommendations/bad%20id",
        "/v1/recommendations/%3Cscript%3E",
        "/v1/recommendations/-leading-dash",
        "/v1/recommendations/ok?limit=0",
        "/v1/recommendations/ok?limit=101",
        "/v1/recommendations/ok?limit=many",
    ):
        response = await shop.client.get(path)
        assert response.status_code == 400, (path, response.status_code, response.text)
        assert response.json()["detail"], path


async def test_readiness_includes_the_recommendations_store(shop: Shop) -> None:
    response = await shop.client.get("/readyz")
    assert response.json()["checks"]["recommendations.store"] == "ok"
