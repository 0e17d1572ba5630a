"""The ``limits`` Redis storage, with its hot calls sent many per round trip.

``limits``' asyncio Redis storage sends one EVALSHA per counted limit; through redis.asyncio that costs
more CPU than a whole reservation. This storage keeps ``limits``' strategies and ``limits``' own Lua
scripts (the windows are theirs, unchanged), and changes only the transport of the two calls every
request makes, ``incr`` (fixed windows) and ``acquire_entry`` (moving windows): calls arriving while a
batch is in flight are queued, and the queue goes out as ONE EVALSHA of a script that runs ``limits``'
script bodies once per queued call, in order, atomically (a batch waits up to ``LINGER_S`` for company).
Everything else (window statistics for a
refusal, clearing) goes through the parent storage as it is.

Like the other Lua batches of this code base, it addresses keys through ARGV: one Redis, not a Redis
Cluster.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aredis
from limits.aio.storage import RedisStorage
from limits.aio.storage.redis.bridge import RedisBridge
from redis.exceptions import NoScriptError

MAX_BATCH = 2000
LINGER_S = 0.001  # the wait a limit check may add, to share a round trip with others


def _as_function(name: str, body: bytes) -> str:
    """A ``limits`` script body as a Lua function of its own KEYS and ARGV."""
    return f"local function {name}(KEYS, ARGV)\n{body.decode()}\nend\n"


BATCH_SCRIPT = (
    _as_function("incr_expire", RedisBridge.SCRIPT_INCR_EXPIRE)
    + _as_function("acquire_moving_window", RedisBridge.SCRIPT_ACQUIRE_MOVING_WINDOW)
    + """
local results = {}
for call in string.gmatch(ARGV[1], "[^\\30]+") do
    local f = {}
    for field in string.gmatch(call, "[^\\31]+") do
        f[#f + 1] = field
    end
    if f[1] == "i" then
        results[#results + 1] = incr_expire({f[2]}, {f[3], f[4]})
    else
        local acquired = acquire_moving_window({f[2]}, {f[3], f[4], f[5], f[6]})
        results[#results + 1] = acquired and 1 or 0
    end
end
return results
"""
)
# One argument for the whole batch (encoding arguments one by one costs more than the round trip):
# calls apart by RS, fields by US, control characters that no key holds (identifiers are validated,
# addresses come from headers, which cannot carry them).
_RECORD, _FIELD = "\x1e", "\x1f"


class _Call:
    __slots__ = ("encoded", "future")

    def __init__(self, encoded: str, future: asyncio.Future[int]) -> None:
        self.encoded = encoded
        self.future = future


class BatchedRedisStorage(RedisStorage):
    """``limits.aio.storage.RedisStorage`` over redis.asyncio, ``incr`` and ``acquire_entry`` batched."""

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri, implementation="redispy", **options)
        self._queue: list[_Call] = []
        self._sending = False
        self._sha: str | None = None

    @property
    def client(self) -> aredis.Redis:
        connection: aredis.Redis = self.bridge.get_connection()  # type: ignore[attr-defined]
        return connection

    def prefixed_key(self, key: str) -> str:
        """The Redis key of ``limits``' window ``key`` (``RateLimiter.windows``)."""
        prefixed: str = self.bridge.prefixed_key(key)
        return prefixed

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return await self._call(_FIELD.join(("i", self.bridge.prefixed_key(key), str(expiry), str(amount))))

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        fields = ("m", self.bridge.prefixed_key(key), repr(time.time()), str(limit), str(expiry), str(amount))
        return bool(await self._call(_FIELD.join(fields)))

    async def _call(self, encoded: str) -> int:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._queue.append(_Call(encoded, future))
        if not self._sending:
            self._sending = True
            loop.call_later(LINGER_S, self._send_next)
        return await future

    def _send_next(self) -> None:
        """Send what is queued (up to MAX_BATCH calls); the next batch leaves ``LINGER_S`` after this one
        is back (a round trip costs the CPU of many calls: waiting a little fills the batch)."""
        batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        if not batch:
            self._sending = False
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._send(batch))
        task.add_done_callback(lambda _: loop.call_later(LINGER_S, self._send_next))

    async def _send(self, batch: list[_Call]) -> None:
        try:
            results = await self._evaluate(_RECORD.join(call.encoded for call in batch))
        except Exception as exc:  # the callers decide what a storage failure means
            for call in batch:
                if not call.future.done():
                    call.future.set_exception(exc)
            return
        for call, result in zip(batch, results, strict=True):
            if not call.future.done():
                call.future.set_result(int(result))

    async def _evaluate(self, calls: str) -> list[Any]:
        client = self.client
        if self._sha is None:
            self._sha = await client.script_load(BATCH_SCRIPT)
        try:
            results: list[Any] = await client.evalsha(self._sha, 0, calls)
        except NoScriptError:  # Redis restarted or flushed its scripts
            self._sha = await client.script_load(BATCH_SCRIPT)
            results = await client.evalsha(self._sha, 0, calls)
        return results

    async def close(self) -> None:
        await self.client.aclose()
