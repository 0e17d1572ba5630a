"""Records passed between the engine's parts, and its counters for operators and benchmarks."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec

from inventory.domain import Reservation, ReserveRequest


@dataclass(slots=True)
class Stats:
    lua_batches: int = 0
    lua_requests: int = 0
    write_batches: int = 0
    written: int = 0
    undone: int = 0
    in_doubt: int = 0
    lua_seconds: float = 0.0
    commit_seconds: float = 0.0
    reconciles: int = 0
    reconcile_failures: int = 0
    #: wall-clock time of the last successful reconcile (0: none yet), for the "reconcile overdue" alert
    last_reconcile_at: float = 0.0
    expired: int = 0
    tombstoned: int = 0


class ReserveCall(msgspec.Struct):
    """A queued reservation and the caller waiting for its answer (one per request: a Struct is
    cheaper to make than a NamedTuple)."""

    request: ReserveRequest
    caller: asyncio.Future[Reservation]


class Decided(msgspec.Struct):
    """A hold taken in Redis, waiting for the group commit."""

    reservation: Reservation
    caller: asyncio.Future[Reservation]
    epoch: str  # the epoch it was decided under (the commit is fenced by it)
    durable: asyncio.Future[None]  # shared by the holds of one Lua batch; set once they are written


class CounterDelta(NamedTuple):
    """How a movement changes one SKU's counters."""

    on_hand: int = 0
    held: int = 0
    sold: int = 0


class BackgroundTasks:
    """Short-lived tasks the engine starts on the side (batches, repeats, cleanup), awaited on close."""

    def __init__(self) -> None:
        self.active: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self.active.add(task)
        task.add_done_callback(self.active.discard)
        return task


def fail_all(futures: Any, exc: Exception) -> None:
    for fut in futures:
        if not fut.done():
            fut.set_exception(exc)


class StockUpdate(NamedTuple):
    """New counters of one locked stock row (also the parameters of ``sql.UPDATE_STOCK``)."""

    on_hand: int
    held: int
    sold: int
    revision: int
    updated_at: float
    sku: str


class OutboxText(NamedTuple):
    """An outbox row with its envelope as text: aiomysql 0.3 cannot escape bytes parameters with
    PyMySQL 1.2, and the envelope is UTF-8 JSON anyway."""

    topic: str
    key: str
    value: str
