"""Embedded trending store: a dict in the serving process (``memory://``). Single event loop: no locks."""

from __future__ import annotations

from collections.abc import Sequence

from read_models.trending.port import Trending, list_key


class MemoryTrendingStore:
    volatile = True

    def __init__(self) -> None:
        self._lists: dict[str, Trending] = {}

    async def start(self) -> None:
        return None

    async def put_many(self, items: Sequence[Trending]) -> int:
        written = 0
        for item in items:
            current = self._lists.get(item.list_key)
            if current is None or item.revision > current.revision:
                self._lists[item.list_key] = item
                written += 1
        return written

    async def get(self, kind: str, window: str, region: str) -> Trending | None:
        return self._lists.get(list_key(kind, window, region))

    async def clear(self) -> None:
        self._lists.clear()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
