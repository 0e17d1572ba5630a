"""Between requests: detect a lost or restarted Redis and a database that answers again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from redis.exceptions import RedisError

from inventory.cluster.database import Database
from inventory.cluster.fast_path import FastPath
from inventory.cluster.sweeper import Sweeper
from inventory.domain import EngineUnavailable

log = structlog.get_logger(__name__)


class Monitor:
    def __init__(
        self,
        db: Database,
        fast: FastPath,
        sweeper: Sweeper,
        *,
        schedule_reconcile: Callable[[], None],
        interval: float,
    ) -> None:
        self.db, self.fast, self.sweeper = db, fast, sweeper
        self.schedule_reconcile, self.interval = schedule_reconcile, interval

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("inventory monitor failed", error=repr(exc))

    async def check_once(self) -> None:
        if await self._check_redis() and (not self.db.ok or self.sweeper.in_doubt):
            await self._check_database()

    async def _check_redis(self) -> bool:
        """A restart (changed run_id) or a missing ``ready`` marker loses the fast path; a newer epoch
        (another process reconciled) is adopted. False when Redis does not answer."""
        fast = self.fast
        try:
            info = await fast.redis.info("server")
            ready = await fast.ready_epoch()
        except RedisError as exc:
            fast.lost(f"redis error: {exc!r}")
            return False
        if fast.run_id is not None and str(info.get("run_id")) != fast.run_id:
            fast.lost("redis restarted (run_id changed)")
        elif fast.epoch is not None and ready != fast.epoch:
            if ready is None:
                fast.lost("ready marker missing")
            else:
                fast.epoch = str(ready)
        elif fast.epoch is None:
            self.schedule_reconcile()
        return True

    async def _check_database(self) -> None:
        """The database answers again: take decisions again and settle the holds left in doubt."""
        try:
            async with self.db.transaction() as cur:
                await cur.execute("SELECT 1")
            self.db.ok = True
            await self.sweeper.settle_in_doubt()
        except EngineUnavailable:
            pass
