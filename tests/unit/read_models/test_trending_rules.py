"""Pure rules of the trending read model: which lists exist, and which events become which lists."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kernel.contracts.events import Envelope, TrendingComputed, TrendingEntry, new_event
from read_models.trending import InvalidTrendingRequest, Trending, newest_per_list, validate_list
from read_models.trending_projector import trending_from_events

END = datetime(2026, 12, 6, 9, tzinfo=UTC)


def event(
    revision: int, *, kind: str = "queries", window: str = "hour", region: str = "", top: str = "milk"
) -> Envelope:
    payload = TrendingComputed(
        window=window,
        kind=kind,
        window_end=END,
        entries=(TrendingEntry(key=top, score=3.5, count=12),),
        region=region,
        run_id=f"run-{revision}",
    )
    return new_event(payload, key=f"trending:{kind}:{window}:{region}", revision=revision, producer="t")


@pytest.mark.parametrize(
    ("kind", "window", "region"),
    [("queries", "hour", ""), ("products", "day", "south"), ("queries", "day", "IN-KA")],
)
def test_valid_lists(kind: str, window: str, region: str) -> None:
    validate_list(kind, window, region)


@pytest.mark.parametrize(
    ("kind", "window", "region", "names"),
    [
        ("queries", "week", "", "window"),
        ("queries", "HOUR", "", "window"),
        ("brands", "hour", "", "kind"),
        ("queries", "hour", "no spaces", "region"),
        ("queries", "hour", "r" * 65, "region"),
    ],
)
def test_invalid_lists_say_what_is_wrong(kind: str, window: str, region: str, names: str) -> None:
    with pytest.raises(InvalidTrendingRequest, match=names):
        validate_list(kind, window, region)


def test_events_become_the_newest_list_each_and_bad_ones_are_counted() -> None:
    events = [
        event(2, top="a"),
        event(1, top="old"),
        event(2, top="same revision"),
        event(5, kind="products", window="day", region="south", top="shop:1"),
        event(9, window="fortnight"),
    ]
    lists, rejected = trending_from_events(events)
    assert rejected == 1
    by_key = {t.list_key: t for t in lists}
    assert set(by_key) == {"queries:hour:", "products:day:south"}
    first = by_key["queries:hour:"]
    assert first.entries[0].key == "a" and first.revision == 2 and first.run_id == "run-2"
    assert first.generated_at == events[0].occurred_at and first.window_end == END


def test_newest_per_list() -> None:
    def lst(revision: int, region: str) -> Trending:
        return Trending(
            kind="queries", window="day", region=region, entries=(), window_end=END, revision=revision
        )

    picked = newest_per_list([lst(1, ""), lst(3, ""), lst(2, ""), lst(1, "x")])
    assert sorted((t.region, t.revision) for t in picked) == [("", 3), ("x", 1)]
