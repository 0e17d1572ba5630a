"""The Redis side: client, Lua scripts and the epoch this process decides under.

Losing Redis' state (an error, a restart, a flush) makes the fast path *lost*: the epoch is dropped,
every decision is refused with 503, and the engine reconciles (invariant 4 in ``engine``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from inventory.cluster.keys import HoldEnding, Keys, Script, StockField
from inventory.domain import EngineUnavailable, StockLevel

log = structlog.get_logger(__name__)


class FastPath:
    def __init__(
        self, redis_url: str, prefix: str, *, idempotency_ttl: int, on_lost: Callable[[], None]
    ) -> None:
        self.redis = aioredis.Redis.from_url(
            redis_url,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),  # a dropped connection must surface: it may mean a restart
            socket_connect_timeout=2,
            socket_timeout=5,
            max_connections=64,
        )
        self.keys = Keys(prefix)
        self.prefix = prefix
        self.idempotency_ttl = idempotency_ttl
        self.epoch: str | None = None  # None = not ready (reconcile needed)
        self.lost_epoch: str | None = None  # the epoch last found lost: never adopted again
        self.losses = 0  # times a trusted fast path was found lost (restart, flush, errors)
        self.last_loss_at = 0.0  # wall-clock time of the last loss
        self.run_id: str | None = None
        self._on_lost = on_lost
        self._sha: dict[Script, str] = {}
        self._sources = {
            script: resources.files("inventory.lua").joinpath(f"{script.value}.lua").read_text()
            for script in Script
        }

    async def close(self) -> None:
        await self.redis.aclose()

    def bucket(self, now: float) -> int:
        """The idempotency hash decisions at ``now`` write to (see reserve_batch.lua)."""
        return int(now // self.idempotency_ttl)

    def bucket_ttl(self, bucket: int, now: float) -> int:
        """Fallback expiry of a bucket's hash (the sweeper unlinks it before)."""
        return int((bucket + 3) * self.idempotency_ttl - now) + 1

    async def load_scripts(self) -> None:
        for script, source in self._sources.items():
            self._sha[script] = await self.redis.script_load(source)
        info = await self.redis.info("server")
        self.run_id = str(info.get("run_id"))

    def sha(self, script: Script) -> str:
        """The loaded script's SHA (for callers that must not mark the fast path lost on an error)."""
        return self._sha[script]

    async def eval(self, script: Script, *args: Any) -> Any:
        try:
            return await self.redis.evalsha(self._sha[script], 0, *args)
        except NoScriptError:
            # Scripts vanish only when Redis restarted (or SCRIPT FLUSH): its data may be stale too.
            self.lost("scripts missing (redis restarted)")
            with contextlib.suppress(RedisError):
                await self.load_scripts()
            raise EngineUnavailable("redis restarted; rebuilding stock counters") from None
        except RedisError as exc:
            self.lost(f"redis error: {exc!r}")
            raise EngineUnavailable(f"redis unavailable: {exc}") from exc

    def lost(self, why: str) -> None:
        """Redis state can no longer be trusted: refuse decisions and rebuild from MySQL."""
        if self.epoch is not None:
            log.warning("inventory fast path lost; reconciling", reason=why)
            self.losses += 1
            self.last_loss_at = time.time()
            self.lost_epoch = self.epoch
        self.epoch = None
        self._on_lost()

    async def ready_epoch(self) -> str | None:
        """The epoch the ``ready`` marker names (raises RedisError)."""
        ready = await self.redis.get(self.keys.ready)
        return None if ready is None else str(ready)

    async def adopt_newer_epoch(self, observed: str) -> bool:
        """After a not_ready answer: adopt a newer epoch (another process reconciled) -> True to retry."""
        try:
            ready = await self.ready_epoch()
        except RedisError as exc:
            self.lost(f"redis error: {exc!r}")
            return False
        if ready is not None and ready != observed:
            self.epoch = str(ready)
            return True
        self.lost("ready marker missing")
        return False

    async def end_holds(self, epoch: str, endings: Sequence[HoldEnding], now: float) -> None:
        """apply_final.lua: move the counters of holds whose end is durable (or undone)."""
        args: list[Any] = [self.prefix, epoch, self.bucket(now)]
        for ending in endings:
            args += (ending.member, ending.end.value)
        await self.eval(Script.APPLY_FINAL, *args)  # not_ready: reconcile rebuilds from MySQL anyway

    async def stock_level(self, sku: str) -> StockLevel | None:
        """Redis' view of a SKU; None when absent or not ready."""
        epoch = self.epoch
        if epoch is None:
            return None
        fields = (StockField.ON_HAND, StockField.HELD, StockField.SOLD, StockField.LIMIT, StockField.REVISION)
        values: list[Any] = await self.redis.hmget(self.keys.stock(epoch, sku), [f.value for f in fields])
        if values[0] is None:
            return None
        on_hand, held, sold, limit, revision = (int(v) for v in values)
        return StockLevel(
            sku=sku,
            on_hand=on_hand,
            held=held,
            sold=sold,
            per_customer_limit=None if limit < 0 else limit,
            revision=revision,
        )
