"""Redis homepage cache (``redis://``): every serving process and projector shares it.

Keys share one hash tag (``{emporium:home}``) so the scripts touch one slot. Writes are Lua scripts (one
round trip per chunk, compare-and-set inside); a build reads its rankings in two pipelined round trips; a
request reads its document's stamp and the generation in one, and decodes the document only when the stamp
changed (each process keeps the last decoded copy of each document).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import BlockingConnectionPool, Redis

from read_models.homepage.model import (
    ACTIVITY_HOURS,
    BUCKET_S,
    ActivityHit,
    Document,
    ProductCard,
    ProductChange,
    ProductEntry,
    RankedList,
    Rankings,
    StockFlag,
    activity_bucket,
    is_personal,
    popular_list,
    recs_list,
)
from read_models.recommendations import is_current

_LUA = Path(__file__).with_name("lua")
_encode = msgspec.msgpack.Encoder().encode
_entry = msgspec.msgpack.Decoder(ProductEntry)
_list = msgspec.msgpack.Decoder(RankedList)
_document = msgspec.msgpack.Decoder(Document)
CHUNK = 500  # items per script call: one call never blocks Redis for long


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisHomepageCache:
    volatile = False

    def __init__(self, client: Redis, prefix: str = "emporium:home") -> None:
        self._redis = client
        self._p = "{" + prefix + "}"
        self._scripts = {
            name: client.register_script((_LUA / f"{name}.lua").read_text())
            for name in ("products", "lists", "stock", "activity", "release")
        }
        self._memo: dict[str, tuple[bytes, Document]] = {}

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "emporium:home", connections: int = 64
    ) -> RedisHomepageCache:
        """A bounded pool that queues for a connection (the default pool fails past its size): a burst of
        requests waits its turn instead of erroring."""
        pool = BlockingConnectionPool.from_url(url, max_connections=connections, timeout=5)
        return cls(Redis.from_pool(pool), prefix=prefix)  # the client owns (and closes) the pool

    def _key(self, *parts: str) -> str:
        return ":".join((self._p, *parts))

    # projector side ------------------------------------------------------------------------

    async def apply_products(self, changes: Sequence[ProductChange]) -> int:
        applied = 0
        for chunk in _chunks(changes):
            args: list[str | bytes | int | float] = [self._p]
            for change in chunk:
                entry = change.entry
                if entry is None:
                    args += [change.product_id, change.revision, 1, b"", "", 0, 0, ""]
                else:
                    rating = entry.card.rating
                    args += [
                        change.product_id, change.revision, 0, _encode(entry), entry.leading_category,
                        repr(entry.first_seen), repr(entry.discount), "" if rating is None else repr(rating),
                    ]  # fmt: skip
            applied += int(await self._scripts["products"](args=args))
        return applied

    async def apply_lists(self, lists: Sequence[RankedList]) -> int:
        applied = 0
        for chunk in _chunks(lists):
            args: list[str | bytes | int] = [self._p]
            for ranked in chunk:
                args += [ranked.name, ranked.revision, _encode(ranked), 0 if is_personal(ranked.name) else 1]
            applied += int(await self._scripts["lists"](args=args))
        await self._remember_regions({ranked.region for ranked in lists})
        return applied

    async def _remember_regions(self, regions: set[str]) -> None:
        regions.discard("")
        if regions:
            await self._redis.sadd(self._key("regions"), *sorted(regions))

    async def apply_stock(self, flags: Sequence[StockFlag]) -> int:
        flipped = 0
        for chunk in _chunks(flags):
            args: list[str | int] = [self._p]
            for flag in chunk:
                args += [flag.sku, 1 if flag.in_stock else 0, flag.revision]
            flipped += int(await self._scripts["stock"](args=args))
        return flipped

    async def add_activity(self, hits: Sequence[ActivityHit], *, now: float) -> int:
        oldest = activity_bucket(now) - ACTIVITY_HOURS + 1
        counted = 0
        for chunk in _chunks(hits):
            args: list[str | int] = [self._p, oldest, ACTIVITY_HOURS, BUCKET_S]
            for hit in chunk:
                args += [hit.event_id, hit.product_id, hit.region, repr(hit.weight), activity_bucket(hit.at)]
            counted += int(await self._scripts["activity"](args=args))
        await self._remember_regions({hit.region for hit in hits})
        return counted

    # build side -------------------------------------------------------------------------------

    async def _active(self, region: str, depth: int, now: float) -> list[str]:
        newest = activity_bucket(now)
        keys = [self._key("act", region, str(b)) for b in range(newest - ACTIVITY_HOURS + 1, newest + 1)]
        scored: list[tuple[bytes, float]] = await self._redis.zunion(keys, withscores=True)  # type: ignore[assignment]
        ranked = sorted(((float(s), _text(m)) for m, s in scored), reverse=True)
        return [pid for _, pid in ranked[:depth]]

    async def rankings(
        self, *, region: str, depth: int, categories: int, per_category: int, lists: Sequence[str], now: float
    ) -> Rankings:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrevrange(self._key("new"), 0, depth - 1)
            pipe.zrevrange(self._key("deals"), 0, depth - 1)
            pipe.zrevrange(self._key("cats"), 0, categories - 1)
            if lists:
                pipe.hmget(self._key("lists"), list(lists))
            new, deals, leading, *found = await pipe.execute()
        leading = [_text(c) for c in leading]
        async with self._redis.pipeline(transaction=False) as pipe:
            for category in leading:
                pipe.zrevrange(self._key("rated", category), 0, per_category - 1)
            rated = await pipe.execute() if leading else []
        stored = [_list.decode(v) for v in (found[0] if found else []) if v is not None]
        return Rankings(
            new=[_text(m) for m in new],
            deals=[_text(m) for m in deals],
            rated={c: [_text(m) for m in ids] for c, ids in zip(leading, rated, strict=True)},
            lists={ranked.name: ranked for ranked in stored},
            activity={r: await self._active(r, depth, now) for r in dict.fromkeys((region, ""))},
        )

    async def products(self, product_ids: Sequence[str]) -> dict[str, ProductEntry]:
        if not product_ids:
            return {}
        values: list[bytes | None] = await self._redis.hmget(self._key("p"), list(product_ids))  # type: ignore[assignment]
        return {pid: _entry.decode(v) for pid, v in zip(product_ids, values, strict=True) if v is not None}

    async def sold_out(self, skus: Sequence[str]) -> set[str]:
        if not skus:
            return set()
        flags: list[bytes | None] = await self._redis.hmget(self._key("stock"), list(skus))  # type: ignore[assignment]
        return {
            sku for sku, flag in zip(skus, flags, strict=True) if flag is None or not flag.endswith(b":1")
        }

    async def region_known(self, region: str) -> bool:
        return bool(await self._redis.sismember(self._key("regions"), region))

    async def generation(self) -> int:
        return int(await self._redis.get(self._key("gen")) or 0)

    # request side ------------------------------------------------------------------------------

    async def document(self, key: str) -> tuple[Document | None, int]:
        doc_key = self._key("doc", key)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(doc_key, "stamp")
            pipe.get(self._key("gen"))
            stamp, generation = await pipe.execute()
        if stamp is None:
            return None, int(generation or 0)
        memo = self._memo.get(key)
        if memo is not None and memo[0] == stamp:
            return memo[1], int(generation or 0)
        data: bytes | None = await self._redis.hget(doc_key, "data")  # type: ignore[assignment]
        if data is None:  # replaced between the two reads: the next request sees the new one
            return (memo[1] if memo else None), int(generation or 0)
        document = _document.decode(data)
        self._memo[key] = (stamp, document)
        return document, int(generation or 0)

    async def put_document(self, key: str, document: Document) -> None:
        stamp = f"{document.built_at!r}:{document.generation}:{document.etag}"
        await self._redis.hset(self._key("doc", key), mapping={"stamp": stamp, "data": _encode(document)})

    async def personal(self, user_id: str, limit: int) -> list[ProductCard]:
        names = [recs_list(user_id), popular_list("")]
        both: list[bytes | None] = await self._redis.hmget(self._key("lists"), names)  # type: ignore[assignment]
        value, everywhere = both
        if value is None:
            return []
        ranked = _list.decode(value)
        if everywhere is not None and not is_current(ranked, _list.decode(everywhere)):
            return []
        ids = ranked.product_ids[:limit]
        found = await self.products(ids)
        return [found[pid].card for pid in ids if pid in found]

    async def acquire(self, name: str, ttl_s: float) -> str | None:
        token = uuid.uuid4().hex
        taken = await self._redis.set(self._key("lock", name), token, nx=True, px=max(1, int(ttl_s * 1000)))
        return token if taken else None

    async def release(self, name: str, token: str) -> None:
        await self._scripts["release"](keys=[self._key("lock", name)], args=[token])

    async def clear(self) -> None:
        keys = [key async for key in self._redis.scan_iter(match=f"{self._p}:*", count=1000)]
        for chunk in _chunks(keys):
            await self._redis.delete(*chunk)
        self._memo.clear()

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
