"""Cluster trending store: Redis (``redis://``), shared by every serving process.

Keys share one hash tag, so the script stays valid on Redis Cluster:

``{prefix}:rev``   hash  list key (``kind:window:region``) -> newest revision
``{prefix}:lists`` hash  list key -> the list, msgspec JSON

``put.lua`` compares and sets a whole batch in one call, so no reader ever sees a list with another
list's revision, and a stale or repeated event writes nothing. Revisions are compared as Lua numbers
(doubles): exact below 2**53, far above any run revision (a timestamp in microseconds is about 2**51).
A read is one ``HGET``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from read_models.trending.port import Trending, TrendingStoreError, list_key

_SCRIPT = Path(__file__).with_name("put.lua").read_text()
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Trending).decode


class RedisTrendingStore:
    volatile = False
    BATCH = 200  # lists per script call: bounded so one call never blocks Redis for long

    def __init__(self, client: Redis, prefix: str = "emporium:trending") -> None:
        self._redis = client
        tag = "{" + prefix + "}"
        self._rev, self._lists = f"{tag}:rev", f"{tag}:lists"
        self._put = client.register_script(_SCRIPT)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "emporium:trending") -> RedisTrendingStore:
        return cls(Redis.from_url(url), prefix=prefix)

    async def start(self) -> None:
        return None  # connections are made on first use; readiness pings

    async def put_many(self, items: Sequence[Trending]) -> int:
        written = 0
        try:
            for start in range(0, len(items), self.BATCH):
                args: list[str | int | bytes] = []
                for item in items[start : start + self.BATCH]:
                    args += [item.list_key, item.revision, _encode(item)]
                written += int(await self._put(keys=[self._rev, self._lists], args=args))
        except RedisError as exc:
            raise TrendingStoreError(f"redis trending store: {exc!r}") from exc
        return written

    async def get(self, kind: str, window: str, region: str) -> Trending | None:
        try:
            raw = await self._redis.hget(self._lists, list_key(kind, window, region))
        except RedisError as exc:
            raise TrendingStoreError(f"redis trending store: {exc!r}") from exc
        return None if raw is None else _decode(raw)

    async def clear(self) -> None:
        await self._redis.delete(self._rev, self._lists)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
