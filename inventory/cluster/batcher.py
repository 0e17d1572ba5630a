"""Reservations decided many per EVALSHA: a queue, a dispatcher, and a deadline for every caller.

``reserve`` queues the request; the dispatcher sends what is queued as one reserve_batch.lua call
(a second batch in parallel only for a deep queue) and hands the granted holds to the group commit,
which answers the callers after COMMIT (invariant 2 in ``engine``). Refusals are answered at once.
Whatever hangs, a caller is answered within ``deadline`` seconds: past it, a retryable 503 (its hold,
if granted later, answers a retry with the same Idempotency-Key, or expires).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import structlog

from inventory.cluster.fast_path import FastPath
from inventory.cluster.group_commit import GroupCommit
from inventory.cluster.keys import ReserveOutcome, Script, ScriptAnswer, member
from inventory.cluster.records import BackgroundTasks, Decided, ReserveCall, Stats, fail_all
from inventory.domain import (
    EngineUnavailable,
    IdempotencyConflict,
    InsufficientStock,
    LimitExceeded,
    LimitWindow,
    Reservation,
    ReservationNotFound,
    ReserveRequest,
    Status,
    UnknownSku,
    WindowExceeded,
)

log = structlog.get_logger(__name__)

# A decision this old that MySQL still has not got, retried by its client: its process died (commits
# take milliseconds; a stalled one still loses to the tombstone safely).
STRANDED_AFTER_S: Final = 5.0


class ReserveBatcher:
    def __init__(
        self,
        fast: FastPath,
        group_commit: GroupCommit,
        *,
        check_open: Callable[[], str],
        lookup: Callable[[str], Awaitable[Reservation]],
        clock: Callable[[], float],
        stats: Stats,
        tasks: BackgroundTasks,
        max_batch: int,
        max_inflight: int,
        spill: int,
        deadline: float,
        settle_timeout: float,
        settle_lost: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.fast, self.group_commit = fast, group_commit
        self.settle_lost = settle_lost  # a hold member -> its tombstone (or real row) wins, Redis follows
        self.check_open, self.lookup, self.clock = check_open, lookup, clock
        self.stats, self.tasks = stats, tasks
        self.max_batch, self.spill, self.deadline = max_batch, max(1, spill), deadline
        self.settle_timeout = settle_timeout
        self.queue: list[ReserveCall] = []
        self._wake = asyncio.Event()
        self._inflight = asyncio.Semaphore(max_inflight)
        self._batches = 0  # Lua batches in flight
        self._waiting: dict[asyncio.Future[Reservation], float] = {}  # caller -> loop time of its deadline

    async def reserve(self, request: ReserveRequest) -> Reservation:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Reservation] = loop.create_future()
        self.queue.append(ReserveCall(request, fut))
        self._wake.set()
        # One deadline for all, so insertion order is deadline order for ``deadline_loop`` (a dict
        # entry per call, not a timer).
        self._waiting[fut] = loop.time() + self.deadline
        try:
            return await fut
        finally:
            del self._waiting[fut]

    def fail_queued(self, exc: Exception) -> None:
        fail_all((call.caller for call in self.queue), exc)
        self.queue.clear()

    async def deadline_loop(self) -> None:
        loop = asyncio.get_running_loop()
        refusal = f"not decided within {self.deadline:g} s; retry with the same Idempotency-Key"
        while True:
            await asyncio.sleep(min(1.0, self.deadline / 4))
            now = loop.time()
            expired = []
            for fut, at in self._waiting.items():
                if at > now:
                    break
                expired.append(fut)
            for fut in expired:
                if not fut.done():  # the batch answers a future only if not done: this answer stands
                    fut.set_exception(EngineUnavailable(refusal))

    async def dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.queue:
                # Another Lua batch in parallel only for a deep queue (as the writers' spill): a
                # shallow one waits for the batch in flight and then goes as one larger batch.
                if self._batches and len(self.queue) < self.spill:
                    break  # ``_batch_done`` wakes the loop again
                await self._inflight.acquire()
                batch = self.queue[: self.max_batch]
                del self.queue[: self.max_batch]
                self._batches += 1
                self.tasks.spawn(self._decide_or_fail(batch)).add_done_callback(self._batch_done)

    def _batch_done(self, _: asyncio.Task[Any]) -> None:
        self._batches -= 1
        self._inflight.release()
        if self.queue:
            self._wake.set()

    async def _decide_or_fail(self, batch: list[ReserveCall]) -> None:
        try:
            await self._decide(batch)
        except Exception as exc:  # a bug must not leave a whole batch of callers waiting forever
            log.exception("reserve batch failed", error=repr(exc))
            fail_all((call.caller for call in batch), EngineUnavailable("internal error; retry"))

    async def _decide(self, batch: list[ReserveCall], retry: bool = True) -> None:
        try:
            epoch = self.check_open()
        except EngineUnavailable as exc:
            fail_all((call.caller for call in batch), exc)
            return
        now = self.clock()
        ids = _new_reservation_ids(now, len(batch))
        expiry = {s: round(now + s, 3) for s in {call.request.hold_seconds for call in batch}}
        lines = "".join(
            f"{rid} {r.sku} {r.customer_id} {r.quantity} {r.idempotency_key} {expiry[r.hold_seconds]}"
            f"{_windows(r.windows) if r.windows else ''}\n"
            for rid, r in zip(ids, (call.request for call in batch), strict=True)
        )
        bucket = self.fast.bucket(now)
        started = time.perf_counter()
        try:
            answer = await self.fast.eval(
                Script.RESERVE_BATCH,
                self.fast.prefix,
                epoch,
                bucket,
                self.fast.bucket_ttl(bucket, now),
                lines,
                repr(now),
            )
        except EngineUnavailable as exc:
            fail_all((call.caller for call in batch), exc)
            return
        self.stats.lua_batches += 1
        self.stats.lua_requests += len(batch)
        self.stats.lua_seconds += time.perf_counter() - started
        if answer == ScriptAnswer.NOT_READY:
            if retry and await self.fast.adopt_newer_epoch(epoch):
                await self._decide(batch, retry=False)
            else:
                fail_all(
                    (call.caller for call in batch),
                    EngineUnavailable("stock counters are being rebuilt; retry"),
                )
            return
        self._answer(batch, answer.split(" "), ids, expiry, now, epoch)

    def _answer(
        self,
        batch: list[ReserveCall],
        outcomes: list[str],
        ids: list[str],
        expiry: dict[int, float],
        now: float,
        epoch: str,
    ) -> None:
        """Refusals now; granted holds to the group commit, which answers after COMMIT."""
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        decided: list[Decided] = []
        for rid, call, outcome in zip(ids, batch, outcomes, strict=True):
            req, fut = call.request, call.caller
            if outcome == ReserveOutcome.HELD:
                res = Reservation(
                    reservation_id=rid,
                    sku=req.sku,
                    quantity=req.quantity,
                    customer_id=req.customer_id,
                    status=Status.HELD,
                    expires_at=expiry[req.hold_seconds],
                    created_at=now,
                    idempotency_key=req.idempotency_key,
                )
                decided.append(Decided(res, fut, epoch, durable))
            elif not fut.done():
                self._refuse(req, fut, outcome)
        if decided:
            self.group_commit.enqueue(decided, durable)

    def _refuse(self, req: ReserveRequest, fut: asyncio.Future[Reservation], answer: str) -> None:
        outcome, _, detail = answer.partition(":")
        if outcome == ReserveOutcome.SHORT:
            fut.set_exception(InsufficientStock(req.sku, req.quantity, int(detail)))
        elif outcome == ReserveOutcome.OVER_LIMIT:
            has, limit = detail.split(":")
            fut.set_exception(LimitExceeded(req.sku, int(limit), int(has), req.quantity))
        elif outcome == ReserveOutcome.UNKNOWN_SKU:
            fut.set_exception(UnknownSku(req.sku))
        elif outcome == ReserveOutcome.LIMITED:
            index, reset_at = detail.split(":")
            fut.set_exception(WindowExceeded(req.windows[int(index) - 1], float(reset_at)))
        elif outcome == ReserveOutcome.REPEAT:
            self.tasks.spawn(self._answer_repeat(req, detail, fut))
        else:
            log.error("unexpected reserve_batch outcome", outcome=answer)
            fut.set_exception(EngineUnavailable("internal error; retry"))

    async def _answer_repeat(self, req: ReserveRequest, rid: str, fut: asyncio.Future[Reservation]) -> None:
        try:
            # The original may still be on its way to MySQL: wait for the batches written now.
            # Bounded: a caller must never wait forever; if it is still unsettled, the 503 below asks
            # the client to retry with the same key.
            pending = self.group_commit.unwritten()
            if pending:
                await asyncio.wait(pending, timeout=self.settle_timeout)
            try:
                existing = await self.lookup(rid)
            except ReservationNotFound:
                await self._settle_if_stranded(req, rid)
                raise EngineUnavailable(
                    "the original reservation is not settled yet; retry shortly"
                ) from None
            if not existing.matches(req):
                raise IdempotencyConflict("Idempotency-Key already used for a different reservation")
            if not fut.done():
                fut.set_result(existing)
        except Exception as exc:
            if not fut.done():
                fut.set_exception(exc)

    async def _settle_if_stranded(self, req: ReserveRequest, rid: str) -> None:
        """A retry of a decision ``STRANDED_AFTER_S`` old that MySQL never got: its process died between
        Redis and MySQL (kill -9). Settle it as the sweeper would past its expiry (a tombstone, unless the
        real row wins), so that the client's next retry is decided afresh instead of waiting for the hold
        to expire. A live but slower commit loses to the tombstone and answers 503: never a double hold."""
        try:
            decided_at = int(rid[:12], 16) / 1000
        except ValueError:
            return
        if self.settle_lost is None or self.clock() - decided_at < STRANDED_AFTER_S:
            return
        await self.settle_lost(member(rid, req.sku, req.customer_id, req.quantity, req.idempotency_key))


def _windows(windows: tuple[LimitWindow, ...]) -> str:
    """The request's rate-limit windows as reserve_batch.lua reads them (a field of its line)."""
    out = ""  # a loop over unpacked fields: a third cheaper than a join over a generator of attributes
    for _, key, limit, seconds, cost, moving in windows:
        out += f"{';' if out else ' '}{'m' if moving else 'f'}|{cost}|{limit}|{seconds}|{key}"
    return out


def _new_reservation_ids(now: float, count: int) -> list[str]:
    """Ids as ``domain.new_reservation_id`` makes them (time-ordered ms prefix + 80 random bits), with
    one urandom call per batch instead of one per reservation."""
    stamp = f"{int(now * 1000):012x}"
    entropy = os.urandom(10 * count).hex()
    return [stamp + entropy[20 * i : 20 * i + 20] for i in range(count)]
