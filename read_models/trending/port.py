"""Trending read model: the port every adapter implements, and its pure rules (no I/O).

One list per (kind, window, region): the entries (query text or product id, time-decayed score, raw
count) of the newest ``TrendingComputed`` event for it, with that event's revision (the analytics run's).
A write replaces the whole list only when its revision is newer than the stored one, so a stale or
repeated event (at-least-once delivery, a replay) never replaces newer state.

Adapters (``tests/contract/test_trending_store.py`` runs one suite against both), chosen by the cache URL:

* ``memory://``: in the serving process (``read_models.trending.memory``), volatile: the process
  replays the trending topic into it at start;
* ``redis://HOST:PORT/DB``: shared by every process (``read_models.trending.redis``), the revision
  compare-and-set done by one Lua script per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Final, Literal, Protocol, get_args

import msgspec

from kernel.contracts.events import TrendingEntry
from read_models.regions import REGION_RULE, is_valid_region

Window = Literal["hour", "day"]
Kind = Literal["queries", "products"]
WINDOWS: Final[tuple[str, ...]] = get_args(Window)
KINDS: Final[tuple[str, ...]] = get_args(Kind)


class Trending(msgspec.Struct, kw_only=True, frozen=True):
    """One trending list as the store keeps it; ``entries`` best first."""

    kind: str
    window: str
    region: str  # "" = every region
    entries: tuple[TrendingEntry, ...]
    window_end: datetime
    revision: int
    generated_at: datetime | None = None
    run_id: str = ""

    @property
    def list_key(self) -> str:
        return list_key(self.kind, self.window, self.region)


class InvalidTrendingRequest(ValueError):
    """A window, kind or region outside the rules; the API answers 400 with this message."""


class TrendingStoreError(Exception):
    """The store cannot be reached or refused the operation; retryable (the API answers 503)."""


def list_key(kind: str, window: str, region: str) -> str:
    """The store's key of one list, as the event's key names it without its ``trending:`` prefix."""
    return f"{kind}:{window}:{region}"


def validate_list(kind: str, window: str, region: str) -> None:
    """Raise ``InvalidTrendingRequest`` naming what is wrong (the API's 400 and the projector's filter)."""
    if window not in WINDOWS:
        raise InvalidTrendingRequest(f"window must be one of {', '.join(WINDOWS)} (got {window!r})")
    if kind not in KINDS:
        raise InvalidTrendingRequest(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
    if not is_valid_region(region):
        raise InvalidTrendingRequest(f"invalid region: {REGION_RULE}")


def newest_per_list(items: Iterable[Trending]) -> list[Trending]:
    """Keep only the highest revision per list (first one seen on ties): one write per list per batch."""
    newest: dict[str, Trending] = {}
    for item in items:
        seen = newest.get(item.list_key)
        if seen is None or item.revision > seen.revision:
            newest[item.list_key] = item
    return list(newest.values())


class TrendingStore(Protocol):
    """The trending read model. Every write is idempotent and revision-conditional."""

    @property
    def volatile(self) -> bool:
        """True when the state does not survive the process (its owner replays the log at start)."""
        ...

    async def start(self) -> None: ...

    async def put_many(self, items: Sequence[Trending]) -> int:
        """Store each list unless the store holds the same or a newer revision of it; how many were
        written. Raises ``TrendingStoreError`` when the store is unavailable."""
        ...

    async def get(self, kind: str, window: str, region: str) -> Trending | None:
        """The current list, or None when no event has named it."""
        ...

    async def clear(self) -> None:
        """Forget everything (tests and full rebuilds)."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
