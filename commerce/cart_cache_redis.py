"""Redis cart cache (``redis://``, the cache URL): every API worker and the projector share it.

A cart is one hash (``v`` version, ``g`` price generation, ``b`` the lines, msgpack) with a TTL renewed by
each write; the known price generation is one key without a TTL. A read is one pipelined round trip (the
cart and the generation); a write is one Lua script that compares and sets (``commerce.cart_cache``).
Each key names one cart or the counter, so nothing needs a hash tag on a Redis Cluster. Redis errors
surface as ``CommerceUnavailable``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from commerce.cart_cache import DEFAULT_TTL_S, CachedCart
from commerce.domain import CartLine, CommerceUnavailable

_encode = msgspec.msgpack.Encoder(decimal_format="string").encode
_decode_lines = msgspec.msgpack.Decoder(list[CartLine]).decode

# KEYS[1] the cart; ARGV version, generation, lines, ttl ms. Keeps the newer copy (see cart_cache.newer).
_PUT = """
local held = redis.call('HMGET', KEYS[1], 'v', 'g')
local v, g = tonumber(ARGV[1]), tonumber(ARGV[2])
if held[1] then
  local hv, hg = tonumber(held[1]), tonumber(held[2])
  if hv > v or (hv == v and hg >= g) then return 0 end
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'g', ARGV[2], 'b', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
# KEYS[1] the known price generation; ARGV[1] the store's. Never lowers it.
_RAISE = """
local known = tonumber(redis.call('GET', KEYS[1]) or '0')
local g = tonumber(ARGV[1])
if g > known then redis.call('SET', KEYS[1], ARGV[1]); return g end
return known
"""


class RedisCartCache:
    shared = True

    def __init__(
        self, client: Redis, *, prefix: str = "emporium:carts", ttl_s: float = DEFAULT_TTL_S
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._generation_key = f"{prefix}:prices"
        self._ttl_ms = int(ttl_s * 1000)
        self._put = client.register_script(_PUT)
        self._raise = client.register_script(_RAISE)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "emporium:carts", connections: int = 64) -> RedisCartCache:
        """A bounded pool that queues for a connection, like the other Redis caches."""
        pool = BlockingConnectionPool.from_url(url, max_connections=connections, timeout=5)
        return cls(Redis.from_pool(pool), prefix=prefix)

    def _key(self, cart_id: str) -> str:
        return f"{self._prefix}:c:{cart_id}"

    async def get(self, cart_id: str) -> tuple[CachedCart | None, int]:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hmget(self._key(cart_id), "v", "g", "b")
                pipe.get(self._generation_key)
                (version, prices, body), generation = await pipe.execute()
        except RedisError as exc:
            raise CommerceUnavailable(f"cart cache unavailable: {exc}") from exc
        current = int(generation or 0)
        if version is None or body is None:
            return None, current
        return CachedCart(version=int(version), prices=int(prices), lines=_decode_lines(body)), current

    async def put(self, cart_id: str, cart: CachedCart) -> bool:
        args: list[Any] = [cart.version, cart.prices, _encode(cart.lines), self._ttl_ms]
        try:
            return bool(await self._put(keys=[self._key(cart_id)], args=args))
        except RedisError as exc:
            raise CommerceUnavailable(f"cart cache unavailable: {exc}") from exc

    async def prices_changed(self, generation: int) -> int:
        try:
            return int(await self._raise(keys=[self._generation_key], args=[generation]))
        except RedisError as exc:
            raise CommerceUnavailable(f"cart cache unavailable: {exc}") from exc

    async def clear(self) -> None:
        keys = [key async for key in self._redis.scan_iter(match=f"{self._prefix}:*", count=1000)]
        for start in range(0, len(keys), 500):
            await self._redis.delete(*keys[start : start + 500])

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
