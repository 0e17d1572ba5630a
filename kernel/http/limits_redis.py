"""The ``limits`` Redis storage, with its hot calls sent many per round trip.

``limits``' asyncio Redis storage sends one EVALSHA per counted limit; through redis.asyncio that costs
more CPU than a whole reservation. This storage keeps ``limits``' strategies and ``limits``' own Lua
scripts (the windows are theirs, unchanged), and changes only the transport of the two calls every
request makes, ``incr`` (fixed windows) and ``acquire_entry`` (moving windows): calls arriving while a
batch is in flight are queued, and the queue goes out as ONE EVALSHA of a script that runs ``limits``'
script bodies once per queued call, in order, atomically. Everything else (window statistics for a
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


def _as_function(name: str, body: bytes) -> str:
    """A ``limits`` script body as a Lua function of its own KEYS and ARGV."""
    return f"local function {name}(KEYS, ARGV)\n{body.decode()}\nend\n"


BATCH_SCRIPT = (
    _as_function("incr_expire", RedisBridge.SCRIPT_INCR_EXPIRE)
    + _as_function("acquire_moving_window", RedisBridge.SCRIPT_ACQUIRE_MOVING_WINDOW)
    + """
local results = {}
local i = 1
while i <= #ARGV do
    if ARGV[i] == "i" then
        results[#results + 1] = incr_expire({ARGV[i + 1]}, {ARGV[i + 2], ARGV[i + 3]})
        i = i + 4
    else
        local arguments = {ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]}
        local acquired = acquire_moving_window({ARGV[i + 1]}, arguments)
        results[#results + 1] = acquired and 1 or 0
        i = i + 6
    end
end
return results
"""
)


class _Call:
    __slots__ = ("args", "future")

    def __init__(self, args: tuple[Any, ...], future: asyncio.Future[int]) -> None:
        self.args = args
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

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return await self._call(("i", self.bridge.prefixed_key(key), expiry, amount))

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        call = ("m", self.bridge.prefixed_key(key), time.time(), limit, expiry, amount)
        return bool(await self._call(call))

    async def _call(self, args: tuple[Any, ...]) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append(_Call(args, future))
        if not self._sending:
            self._sending = True
            asyncio.get_running_loop().call_soon(self._send_next)
        return await future

    def _send_next(self) -> None:
        """Send what is queued (up to MAX_BATCH calls); the next batch leaves when this one is back."""
        batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        if not batch:
            self._sending = False
            return
        task = asyncio.get_running_loop().create_task(self._send(batch))
        task.add_done_callback(lambda _: self._send_next())

    async def _send(self, batch: list[_Call]) -> None:
        argv = [part for call in batch for part in call.args]
        try:
            results = await self._evaluate(argv)
        except Exception as exc:  # the callers decide what a storage failure means
            for call in batch:
                if not call.future.done():
                    call.future.set_exception(exc)
            return
        for call, result in zip(batch, results, strict=True):
            if not call.future.done():
                call.future.set_result(int(result))

    async def _evaluate(self, argv: list[Any]) -> list[Any]:
        client = self.client
        if self._sha is None:
            self._sha = await client.script_load(BATCH_SCRIPT)
        try:
            results: list[Any] = await client.evalsha(self._sha, 0, *argv)
        except NoScriptError:  # Redis restarted or flushed its scripts
            self._sha = await client.script_load(BATCH_SCRIPT)
            results = await client.evalsha(self._sha, 0, *argv)
        return results

    async def close(self) -> None:
        await self.client.aclose()
