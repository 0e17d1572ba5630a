"""Group reservations on the cluster engine (``inventory.groups``): a checkout's lines, all or nothing.

Deciding: groups are queued and sent many per EVALSHA of reserve_group.lua, which takes every line of
a group or none. Recording: the granted holds of one Lua batch are written by ONE ``commit_holds`` of a
group commit of their own (its writer connections are not the single reservations'), i.e. one MySQL
transaction, and answered after COMMIT (invariant 2 in ``engine``): every line of a group is durable, or
none is and the Redis holds are undone (invariant 3). The holds are ordinary holds afterwards: the
sweeper, reconcile and the transitions treat them like any other.

Confirming and releasing a group lock all its rows in one transaction and decide them together, so a
group is never partly sold: a line that expired or was released fails the confirm, and the group's
other holds are given back in the same transaction.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import structlog

from inventory.cluster import sql
from inventory.cluster.database import Database
from inventory.cluster.fast_path import FastPath
from inventory.cluster.group_commit import GroupCommit
from inventory.cluster.keys import HoldEnd, HoldEnding, Script, ScriptAnswer, hold_member
from inventory.cluster.records import BackgroundTasks, Decided, Stats
from inventory.cluster.transitions import Transitions
from inventory.domain import (
    EngineUnavailable,
    IdempotencyConflict,
    InsufficientStock,
    InvalidTransition,
    LimitExceeded,
    Reservation,
    ReservationNotFound,
    ReserveRequest,
    Status,
    UnknownSku,
    decide_confirm,
)
from inventory.groups import GroupReserveRequest, line_requests
from inventory.sql_common import RESERVATION_COLUMNS, reservation_from_row

log = structlog.get_logger(__name__)


class _GroupCall(msgspec.Struct):
    request: GroupReserveRequest
    lines: list[ReserveRequest]
    caller: asyncio.Future[list[Reservation]]


class GroupReserver:
    def __init__(
        self,
        fast: FastPath,
        db: Database,
        commit: GroupCommit,
        transitions: Transitions,
        *,
        check_open: Callable[[], str],
        clock: Callable[[], float],
        stats: Stats,
        tasks: BackgroundTasks,
        max_batch: int = 500,
        max_inflight: int = 4,
    ) -> None:
        self.fast, self.db, self.commit, self.transitions = fast, db, commit, transitions
        self.check_open, self.clock, self.stats, self.tasks = check_open, clock, stats, tasks
        self.max_batch = max_batch
        self.queue: list[_GroupCall] = []
        self._wake = asyncio.Event()
        self._inflight = asyncio.Semaphore(max_inflight)
        self._writers: asyncio.Queue[int] = asyncio.Queue()
        for idx in range(len(commit.connections)):
            self._writers.put_nowait(idx)
        self._unwritten: set[asyncio.Future[None]] = set()

    @property
    def busy(self) -> bool:
        return bool(self.queue or self._unwritten)

    async def reserve_many(self, request: GroupReserveRequest) -> list[Reservation]:
        fut: asyncio.Future[list[Reservation]] = asyncio.get_running_loop().create_future()
        self.queue.append(_GroupCall(request, line_requests(request), fut))
        self._wake.set()
        return await fut

    def fail_queued(self, exc: Exception) -> None:
        for call in self.queue:
            if not call.caller.done():
                call.caller.set_exception(exc)
        self.queue.clear()

    async def dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.queue:
                await self._inflight.acquire()
                batch = self.queue[: self.max_batch]
                del self.queue[: self.max_batch]
                self.tasks.spawn(self._decide_or_fail(batch)).add_done_callback(
                    lambda _: self._inflight.release()
                )

    async def _decide_or_fail(self, batch: list[_GroupCall]) -> None:
        try:
            await self._decide(batch)
        except Exception as exc:
            log.exception("group reserve batch failed", error=repr(exc))
            self.fail_queued_calls(batch, EngineUnavailable("internal error; retry"))

    @staticmethod
    def fail_queued_calls(batch: Sequence[_GroupCall], exc: Exception) -> None:
        for call in batch:
            if not call.caller.done():
                call.caller.set_exception(exc)

    async def _decide(self, batch: list[_GroupCall], retry: bool = True) -> None:
        try:
            epoch = self.check_open()
        except EngineUnavailable as exc:
            self.fail_queued_calls(batch, exc)
            return
        now = self.clock()
        ids = _ids(now, sum(len(call.lines) for call in batch))
        text, rids = _encode(batch, ids, now)
        bucket = self.fast.bucket(now)
        started = time.perf_counter()
        try:
            answer = await self.fast.eval(
                Script.RESERVE_GROUP, self.fast.prefix, epoch, bucket, self.fast.bucket_ttl(bucket, now), text
            )
        except EngineUnavailable as exc:
            self.fail_queued_calls(batch, exc)
            return
        self.stats.lua_seconds += time.perf_counter() - started
        if answer == ScriptAnswer.NOT_READY:
            if retry and await self.fast.adopt_newer_epoch(epoch):
                await self._decide(batch, retry=False)
            else:
                self.fail_queued_calls(batch, EngineUnavailable("stock counters are being rebuilt; retry"))
            return
        granted: list[tuple[_GroupCall, list[Decided]]] = []
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()
        for call, group_ids, outcome in zip(batch, rids, answer.split(" "), strict=True):
            if outcome == "held":
                expires_at = round(now + call.request.hold_seconds, 3)
                decided = [
                    Decided(_held(line, rid, expires_at, now), loop.create_future(), epoch, durable)
                    for line, rid in zip(call.lines, group_ids, strict=True)
                ]
                granted.append((call, decided))
            elif outcome == "repeat":
                self.tasks.spawn(self._answer_repeat(call))
            else:
                call.caller.set_exception(_refusal(call, outcome))
        if granted:
            await self._record(epoch, granted, durable)

    async def _record(
        self, epoch: str, granted: list[tuple[_GroupCall, list[Decided]]], durable: asyncio.Future[None]
    ) -> None:
        """One transaction for every granted group of the batch, then the answers."""
        self._unwritten.add(durable)
        idx = await self._writers.get()
        try:
            await self.commit.commit_holds(epoch, [d for _, decided in granted for d in decided], idx)
        finally:
            self._writers.put_nowait(idx)
            self._unwritten.discard(durable)
            if not durable.done():
                durable.set_result(None)
        for call, decided in granted:
            results: list[Any] = [
                d.caller.exception() if d.caller.exception() is not None else d.caller.result()
                for d in decided
            ]
            failed = [r for r in results if isinstance(r, BaseException)]
            if not failed:
                call.caller.set_result(results)
                continue
            recorded = [r for r in results if isinstance(r, Reservation)]
            if recorded:  # a line tombstoned before its commit: give the rest back, answer "retry"
                await self.release_many([r.reservation_id for r in recorded])
            call.caller.set_exception(failed[0])

    async def _answer_repeat(self, call: _GroupCall) -> None:
        try:
            pending = [f for f in self._unwritten if not f.done()]
            if pending:
                await asyncio.wait(pending, timeout=self.db.timeout)
            keys = [line.idempotency_key for line in call.lines]
            async with self.db.transaction() as cur:
                where = f"idempotency_key IN {sql.in_list(keys)}"
                await cur.execute(f"SELECT {RESERVATION_COLUMNS} FROM inv_reservations WHERE {where}")
                rows = [reservation_from_row(r) for r in await cur.fetchall()]
            by_key = {r.idempotency_key: r for r in rows}
            group = [by_key.get(key) for key in keys]
            if any(r is None for r in group):
                raise EngineUnavailable("the original reservation is not settled yet; retry shortly")
            if any(r is not None and not r.matches(line) for r, line in zip(group, call.lines, strict=True)):
                raise IdempotencyConflict("Idempotency-Key already used for a different reservation")
            if not call.caller.done():
                call.caller.set_result([r for r in group if r is not None])
        except Exception as exc:
            if not call.caller.done():
                call.caller.set_exception(exc)

    # confirm / release --------------------------------------------------------------------------

    async def _locked_group(self, cur: Any, reservation_ids: Sequence[str]) -> list[Reservation]:
        await cur.execute(sql.select_reservations_for_update(reservation_ids))
        rows = {r.reservation_id: r for r in (reservation_from_row(x) for x in await cur.fetchall())}
        group = []
        for rid in reservation_ids:
            res = rows.get(rid)
            if res is None or res.idempotency_key.startswith(sql.LOST_PREFIX):
                raise ReservationNotFound(rid)
            group.append(res)
        return group

    async def confirm_many(self, reservation_ids: Sequence[str]) -> list[Reservation]:
        now = self.clock()

        async def attempt() -> tuple[list[Reservation], list[HoldEnding], InvalidTransition | None]:
            async with self.db.transaction() as cur:
                group = await self._locked_group(cur, reservation_ids)
                refusal: InvalidTransition | None = None
                for res in group:
                    try:
                        if decide_confirm(res, now) is not Status.CONFIRMED:
                            refusal = InvalidTransition(res.reservation_id, Status.EXPIRED, "confirm")
                    except InvalidTransition as exc:
                        refusal = exc
                held = [r for r in group if r.status is Status.HELD]
                if refusal is None:
                    await self.transitions.finish(cur, held, Status.CONFIRMED, now)
                    ends = {r.reservation_id: Status.CONFIRMED for r in held}
                else:
                    due = [r for r in held if r.is_due(now)]
                    live = [r for r in held if not r.is_due(now)]
                    await self.transitions.finish(cur, due, Status.EXPIRED, now)
                    await self.transitions.finish(cur, live, Status.RELEASED, now)
                    ends = {r.reservation_id: Status.RELEASED for r in live}
                    ends.update({r.reservation_id: Status.EXPIRED for r in due})
            endings = [HoldEnding(hold_member(r), HoldEnd(ends[r.reservation_id].value)) for r in held]
            final = [msgspec.structs.replace(r, status=ends.get(r.reservation_id, r.status)) for r in group]
            return final, endings, refusal

        group, endings, refusal = await self.db.retrying(attempt)
        await self.transitions.apply(endings)
        if refusal is not None:
            raise refusal
        return group

    async def release_many(self, reservation_ids: Sequence[str]) -> list[Reservation]:
        now = self.clock()

        async def attempt() -> tuple[list[Reservation], list[HoldEnding]]:
            async with self.db.transaction() as cur:
                group = await self._locked_group(cur, reservation_ids)
                for res in group:
                    if res.status is Status.CONFIRMED:
                        raise InvalidTransition(res.reservation_id, res.status, "release")
                held = [r for r in group if r.status is Status.HELD]
                await self.transitions.finish(cur, held, Status.RELEASED, now)
            endings = [HoldEnding(hold_member(r), HoldEnd.RELEASED) for r in held]
            released = {r.reservation_id for r in held}
            final = [
                msgspec.structs.replace(r, status=Status.RELEASED) if r.reservation_id in released else r
                for r in group
            ]
            return final, endings

        group, endings = await self.db.retrying(attempt)
        await self.transitions.apply(endings)
        return group


def _ids(now: float, count: int) -> list[str]:
    stamp = f"{int(now * 1000):012x}"
    entropy = os.urandom(10 * count).hex()
    return [stamp + entropy[20 * i : 20 * i + 20] for i in range(count)]


def _encode(batch: list[_GroupCall], ids: list[str], now: float) -> tuple[str, list[list[str]]]:
    """reserve_group.lua's argument and the reservation ids of each group's lines."""
    parts: list[str] = []
    rids: list[list[str]] = []
    at = 0
    for call in batch:
        r = call.request
        group_ids = ids[at : at + len(call.lines)]
        at += len(call.lines)
        rids.append(group_ids)
        lines = " ".join(
            f"{rid} {line.sku} {line.quantity}" for rid, line in zip(group_ids, call.lines, strict=True)
        )
        parts.append(f"{r.customer_id} {round(now + r.hold_seconds, 3)} {r.idempotency_key} {lines}\n")
    return "".join(parts), rids


def _held(line: ReserveRequest, rid: str, expires_at: float, now: float) -> Reservation:
    return Reservation(
        reservation_id=rid, sku=line.sku, quantity=line.quantity, customer_id=line.customer_id,
        status=Status.HELD, expires_at=expires_at, created_at=now, idempotency_key=line.idempotency_key,
    )  # fmt: skip


def _refusal(call: _GroupCall, outcome: str) -> Exception:
    kind, _, detail = outcome.partition(":")
    position, _, rest = detail.partition(":")
    if not position.isdigit():
        return EngineUnavailable(f"unexpected reserve_group outcome {outcome!r}")
    line = call.lines[int(position) - 1]
    if kind == "short":
        return InsufficientStock(line.sku, line.quantity, int(rest))
    if kind == "over_limit":
        has, limit = rest.split(":")
        return LimitExceeded(line.sku, int(limit), int(has), line.quantity)
    if kind == "unknown_sku":
        return UnknownSku(line.sku)
    return EngineUnavailable(f"unexpected reserve_group outcome {outcome!r}")
