"""The import pipeline's moving parts: a batch of prepared lines (built in a worker thread) and the
window of publish-then-commit steps in flight."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Iterator

from ingest.model import fingerprint
from ingest.parsing import LineError
from ingest.profiles import Profile
from ingest.validation import RowRejected, validate
from kernel.contracts.events import Product


class Batch:
    """One batch of prepared lines (built in a worker thread)."""

    __slots__ = ("elapsed", "errors", "exhausted", "items")

    def __init__(self) -> None:
        self.items: list[tuple[int, Product, bytes]] = []
        self.errors: list[LineError] = []
        self.exhausted = False
        self.elapsed = 0.0  # CPU-stage seconds spent on this batch


def prepare_batch(
    records: Iterator[tuple[int, dict] | LineError],
    profile: Profile,
    supplier_id: str,
    size: int,
    default_stock: int | None = None,
) -> Batch:
    started = time.perf_counter()
    batch = Batch()
    items, errors = batch.items, batch.errors
    mapper = profile.map
    for _ in range(size):
        record = next(records, None)
        if record is None:
            batch.exhausted = True
            break
        if isinstance(record, LineError):
            errors.append(record)
            continue
        line, row = record
        try:
            product = validate(mapper(row), supplier_id, default_stock)
        except RowRejected as exc:
            errors.append(LineError(line, exc.reason))
            continue
        items.append((line, product, fingerprint(product)))
    batch.elapsed = time.perf_counter() - started
    return batch


class PublishWindow:
    """Up to ``size`` publish-then-commit steps in flight, awaited in submission order.

    While batch N waits for the log's acknowledgement, batch N+1 is looked up and planned. Keys
    never repeat across batches of a feed (duplicates are rejected), so per-key order holds, and
    each batch still commits its fingerprints only after its own events were acknowledged.
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._tasks: deque[asyncio.Future[None]] = deque()

    async def submit(self, step: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(step))
        while len(self._tasks) >= self.size:
            await self._tasks.popleft()

    async def drain(self) -> None:
        while self._tasks:
            await self._tasks.popleft()

    async def abandon(self) -> None:
        """After a failure: let in-flight steps finish (or fail) before the import returns."""
        while self._tasks:
            with contextlib.suppress(BaseException):
                await self._tasks.popleft()
