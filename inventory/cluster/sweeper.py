"""The sweeper: expires due holds (recorded in MySQL first, then applied to Redis), resolves holds
that Redis has but MySQL never got (tombstones, invariant 3 in ``engine``), and drops idempotency
buckets no decision reads any more.

The expiry index in Redis is complete: every hold in MySQL was added to it when decided, and
reconcile rebuilds it from MySQL's held rows, so MySQL itself is never scanned for due holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Callable, Mapping

import structlog
from redis.exceptions import RedisError

from inventory.cluster import sql
from inventory.cluster.database import Database
from inventory.cluster.fast_path import FastPath
from inventory.cluster.keys import HoldEnd, HoldEnding, Script, ScriptAnswer, hold_member, reservation_id_of
from inventory.cluster.records import Stats
from inventory.cluster.transitions import Transitions
from inventory.domain import EngineUnavailable, Reservation, Status
from inventory.sql_common import reservation_from_row

log = structlog.get_logger(__name__)


class Sweeper:
    def __init__(
        self,
        db: Database,
        fast: FastPath,
        transitions: Transitions,
        *,
        check_db: Callable[[], None],
        clock: Callable[[], float],
        stats: Stats,
        in_doubt: list[Reservation],
        lost_grace: float,
        interval: float | None,
    ) -> None:
        self.db, self.fast, self.transitions = db, fast, transitions
        self.check_db, self.clock, self.stats, self.in_doubt = check_db, clock, stats, in_doubt
        self.lost_grace, self.interval = lost_grace, interval

    async def run(self) -> None:
        assert self.interval
        while True:
            await asyncio.sleep(self.interval)
            if not self.db.ok or self.fast.epoch is None:
                continue
            try:
                await self.expire_due()
                await self._drop_old_idempotency()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("inventory sweep failed", error=repr(exc))

    async def expire_due(self, now: float | None = None, limit: int = 1000) -> int:
        """Due holds from Redis' expiry index: expired in MySQL, then applied to Redis."""
        self.check_db()
        at = self.clock() if now is None else now
        epoch = self.fast.epoch
        candidates: dict[str, float] = {}
        if epoch is not None:
            due = await self.fast.eval(Script.DUE, self.fast.prefix, epoch, repr(at), limit)
            if due != ScriptAnswer.NOT_READY:  # a flat list: member, expires_at, member, ...
                candidates = dict(zip(due[::2], map(float, due[1::2]), strict=True))
        expired, endings = await self._settle_holds(candidates, at, expire_before=at)
        await self.transitions.apply(endings)
        self.stats.expired += expired
        return expired

    async def settle_in_doubt(self) -> None:
        """Resolve holds whose COMMIT had an unknown outcome: the real row or a tombstone wins."""
        if not self.in_doubt:
            return
        pending = self.in_doubt[:]
        self.in_doubt.clear()
        try:
            _, endings = await self._settle_holds(
                {hold_member(r): 0.0 for r in pending}, self.clock(), expire_before=None
            )
        except EngineUnavailable:
            self.in_doubt.extend(pending)
            raise
        await self.transitions.apply(endings)

    async def settle_lost(self, member: str) -> None:
        """A hold whose process died before recording it (a retry found it): the real row or a
        tombstone wins, and Redis follows (the key is then free to be decided afresh)."""
        _, endings = await self._settle_holds({member: 0.0}, self.clock(), expire_before=None)
        await self.transitions.apply(endings)

    async def _settle_holds(
        self, candidates: dict[str, float], now: float, *, expire_before: float | None
    ) -> tuple[int, list[HoldEnding]]:
        """Resolve Redis holds (member -> expires_at) against MySQL: expire due ones (all of them
        when ``expire_before`` is None), tombstone those MySQL never got.

        Returns the number expired and the endings to apply to Redis. A hold is tombstoned only
        ``lost_grace`` past its expiry so an in-flight group commit is not raced in normal operation;
        even if it is, the tombstone wins and the late commit is refused.
        """
        if not candidates:
            return 0, []
        return await self.db.retrying(lambda: self._settle_holds_once(candidates, now, expire_before))

    async def _settle_holds_once(
        self, candidates: dict[str, float], now: float, expire_before: float | None
    ) -> tuple[int, list[HoldEnding]]:
        rid_of = {member: reservation_id_of(member) for member in candidates}
        async with self.db.transaction() as cur:
            lost = (
                [rid_of[m] for m, expires_at in candidates.items() if expires_at + self.lost_grace <= now]
                if expire_before is not None
                else list(rid_of.values())
            )
            if lost:
                with warnings.catch_warnings():  # "Duplicate entry" for every real row: expected
                    warnings.simplefilter("ignore")
                    await cur.execute(sql.insert_tombstones(lost, now))
            await cur.execute(sql.select_reservations_for_update(rid_of.values()))
            rows = {r.reservation_id: r for r in (reservation_from_row(x) for x in await cur.fetchall())}
            to_expire, endings = self._endings(rid_of, rows, expire_before)
            await self.transitions.finish(cur, to_expire, Status.EXPIRED, now)
        return len(to_expire), endings

    def _endings(
        self, rid_of: Mapping[str, str], rows: Mapping[str, Reservation], expire_before: float | None
    ) -> tuple[list[Reservation], list[HoldEnding]]:
        """What MySQL says of each hold: tombstoned (undo), still held (expire if due), or ended."""
        to_expire: list[Reservation] = []
        endings: list[HoldEnding] = []
        for member, rid in rid_of.items():
            row = rows.get(rid)
            if row is None:
                continue  # not yet recorded and not yet past grace: look again next sweep
            if row.idempotency_key.startswith(sql.LOST_PREFIX):
                endings.append(HoldEnding(member, HoldEnd.UNDO))
                self.stats.tombstoned += 1
            elif row.status is Status.HELD:
                if expire_before is not None and row.expires_at <= expire_before:
                    to_expire.append(row)
                    endings.append(HoldEnding(member, HoldEnd.EXPIRED))
            else:
                endings.append(HoldEnding(member, HoldEnd(row.status.value)))
        return to_expire, endings

    async def _drop_old_idempotency(self) -> None:
        """UNLINK idempotency buckets that no decision reads any more: freed off Redis' main thread,
        where their own (fallback) expiry would free a big hash synchronously."""
        epoch = self.fast.epoch
        if epoch is None:
            return
        bucket = self.fast.bucket(self.clock())
        keys = self.fast.keys
        with contextlib.suppress(RedisError):
            await self.fast.redis.unlink(
                keys.idempotency(epoch, bucket - 2), keys.idempotency(epoch, bucket - 3)
            )
