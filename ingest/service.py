"""The supplier-feed use cases: onboard a supplier, authenticate it, import a feed.

Import pipeline, one batch of lines at a time (memory stays flat whatever the feed size):

    read + parse -> map (profile) -> validate -> fingerprint        (worker thread, pure CPU)
    -> look up stored fingerprints -> plan ProductUpserted for new/changed products
    -> publish the batch's events -> THEN store the new fingerprints and revisions

Publishing before committing is what makes a crash safe: the worst case re-publishes a batch with
the same revisions (projectors drop repeats by revision), never loses an event. ``mode="full"``
then publishes ProductRemoved for the supplier's products the feed did not name, but only when the
whole feed was read and at least one line was accepted (a truncated or empty upload must not wipe
a catalog).

The worker thread parses batch N+1 while batch N is published and committed. One import per
supplier runs at a time (a lease in the ingest store, renewed every batch): two concurrent imports
would both read revision N and publish different N+1s. Products named twice in one feed are
rejected after the first occurrence.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import structlog

from ingest.auth import SUPPLIER_KEY_PREFIX, KeyHasher
from ingest.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthorized,
)
from ingest.identities import OWNER_ID, OWNER_ID_RULE, SUPPLIER, Identities
from ingest.model import (
    PRODUCER,
    FeedReport,
    FeedStatus,
    Mode,
    ProductState,
    SupplierRecord,
    fingerprint,
    plan_removals,
    plan_upserts,
)
from ingest.parsing import FeedFormat, FeedReader, LineError, format_from_filename
from ingest.profiles import Profile, get_profile
from ingest.store import IngestStore, SupplierExists
from ingest.validation import RowRejected, validate
from kernel.contracts.events import Envelope, Product, SupplierOnboarded, new_event
from kernel.eventlog.port import EventLog
from kernel.eventlog.processing import publish_events

log = structlog.get_logger(__name__)

DEFAULT_BATCH_LINES = 2000
IMPORT_LEASE_S = 120.0  # renewed every batch; outlives a crashed importer by at most this long
SUPPLIER_ID = OWNER_ID


class _Batch:
    """One batch of prepared lines (built in a worker thread)."""

    __slots__ = ("elapsed", "errors", "exhausted", "items")

    def __init__(self) -> None:
        self.items: list[tuple[int, Product, bytes]] = []
        self.errors: list[LineError] = []
        self.exhausted = False
        self.elapsed = 0.0  # CPU-stage seconds spent on this batch


def _prepare_batch(
    records: Iterator[tuple[int, dict] | LineError], profile: Profile, supplier_id: str, size: int
) -> _Batch:
    started = time.perf_counter()
    batch = _Batch()
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
            product = validate(mapper(row), supplier_id)
        except RowRejected as exc:
            errors.append(LineError(line, exc.reason))
            continue
        items.append((line, product, fingerprint(product)))
    batch.elapsed = time.perf_counter() - started
    return batch


class _Window:
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


class IngestService:
    def __init__(
        self,
        store: IngestStore,
        event_log: EventLog,
        *,
        key_secret: bytes,
        batch_lines: int = DEFAULT_BATCH_LINES,
        publish_window: int = 2,
        on_report: Callable[[FeedReport], None] | None = None,
    ) -> None:
        self.store = store
        self.event_log = event_log
        self.identities = Identities(store, KeyHasher(key_secret))
        self.batch_lines = batch_lines
        self.publish_window = publish_window
        self._on_report = on_report

    # -- suppliers --------------------------------------------------------------------------

    async def add_supplier(self, supplier_id: str, name: str | None = None) -> tuple[SupplierRecord, str]:
        """Register a supplier; return it with its API key (shown once, stored hashed)."""
        if not SUPPLIER_ID.match(supplier_id):
            raise InvalidRequest(f"supplier_id must be {OWNER_ID_RULE}")
        key, key_hash = self.identities.new_key(SUPPLIER_KEY_PREFIX)
        record = SupplierRecord(
            supplier_id=supplier_id,
            name=(name or supplier_id).strip()[:200] or supplier_id,
            key_id=key.key_id,
            key_hash=key_hash,
            created_at=datetime.now(UTC),
        )
        try:
            await self.store.add_supplier(record)
        except SupplierExists:
            raise Conflict(f"supplier {supplier_id!r} already exists") from None
        event = new_event(
            SupplierOnboarded(supplier_id=supplier_id, name=record.name),
            key=f"supplier:{supplier_id}",
            revision=1,
            producer=PRODUCER,
        )
        await publish_events(self.event_log, [event])
        return record, key.token

    async def rotate_key(self, supplier_id: str) -> str:
        supplier = await self.store.get_supplier(supplier_id)
        if supplier is None:
            raise NotFound(f"unknown supplier {supplier_id!r}")
        key, key_hash = self.identities.new_key(SUPPLIER_KEY_PREFIX)
        await self.store.replace_key(supplier_id, key.key_id, key_hash)
        self.identities.forget(SUPPLIER, supplier.key_id)
        return key.token

    async def authenticate(self, supplier_id: str, token: str | None) -> None:
        """401 for a missing or wrong key, 403 for a valid key of another supplier or of a storefront."""
        if not token:
            raise Unauthorized("missing X-Api-Key header")
        caller = await self.identities.identify(token)
        if caller is None:
            raise Unauthorized("invalid API key")
        if caller.kind != SUPPLIER:
            raise Forbidden(f"a {caller.kind} key cannot call supplier routes")
        if caller.id != supplier_id:
            raise Forbidden(f"this API key does not belong to supplier {supplier_id!r}")

    # -- feeds ------------------------------------------------------------------------------

    async def get_feed(self, supplier_id: str, feed_id: str) -> FeedReport:
        report = await self.store.get_feed(supplier_id, feed_id)
        if report is None:
            raise NotFound(f"unknown feed {feed_id!r} for supplier {supplier_id!r}")
        return report

    async def import_feed(
        self,
        supplier_id: str,
        source: IO[bytes],
        *,
        fmt: FeedFormat,
        profile: str = "canonical",
        mode: Mode = "delta",
        source_dir: Path | None = None,
        on_read: Callable[[int], None] | None = None,
    ) -> FeedReport:
        """Import one feed body. Raises FeedError (whole feed unusable) before anything is published."""
        started = time.perf_counter()
        if mode not in ("delta", "full"):
            raise InvalidRequest(f"mode must be 'delta' or 'full', got {mode!r}")
        if await self.store.get_supplier(supplier_id) is None:
            raise NotFound(f"unknown supplier {supplier_id!r}")
        mapper = get_profile(profile, supplier_id, source_dir=source_dir)
        feed_id = uuid.uuid4().hex
        if not await self.store.acquire_import_lease(supplier_id, feed_id, IMPORT_LEASE_S):
            raise Conflict(
                f"another feed of supplier {supplier_id!r} is being imported; retry when it is done"
            )
        try:
            return await self._import(
                supplier_id,
                source,
                feed_id=feed_id,
                fmt=fmt,
                mapper=mapper,
                mode=mode,
                on_read=on_read,
                started=started,
            )
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.release_import_lease(supplier_id, feed_id))

    async def _import(
        self,
        supplier_id: str,
        source: IO[bytes],
        *,
        feed_id: str,
        fmt: FeedFormat,
        mapper: Profile,
        mode: Mode,
        on_read: Callable[[int], None] | None,
        started: float,
    ) -> FeedReport:
        reader = await asyncio.to_thread(FeedReader, source, fmt, on_read=on_read)
        report = FeedReport(
            feed_id=feed_id,
            supplier_id=supplier_id,
            profile=mapper.name,
            mode=mode,
            format=str(fmt),
            created_at=datetime.now(UTC),
        )
        timings = {"prepare_s": 0.0, "lookup_s": 0.0, "publish_s": 0.0, "commit_s": 0.0}
        records = reader.records()
        seen: dict[str, int] = {}
        saved = False
        pending: asyncio.Future[_Batch] | None = None
        window = _Window(self.publish_window)

        def prepare() -> asyncio.Future[_Batch]:
            return asyncio.ensure_future(
                asyncio.to_thread(_prepare_batch, records, mapper, supplier_id, self.batch_lines)
            )

        try:
            batch = await prepare()
            if reader.columns is not None:
                mapper.check_columns(reader.columns)  # FeedError -> refused, nothing published
            await self.store.save_feed(report)
            saved = True
            while True:
                # Pipeline: the worker thread parses batch N+1 while batch N is published and committed.
                pending = None if batch.exhausted else prepare()
                await self._apply_batch(report, batch, seen, timings, window)
                if not await self.store.acquire_import_lease(supplier_id, feed_id, IMPORT_LEASE_S):  # renew
                    raise Conflict("the import lease expired and another import took over; re-push the feed")
                timings["prepare_s"] += batch.elapsed
                if pending is None:
                    break
                batch, pending = await pending, None
            await window.drain()
            report.bytes_read = reader.bytes_read
            if mode == "full":
                await self._remove_missing(report, reader.complete, seen, timings)
            report.status = FeedStatus.COMPLETED if reader.complete else FeedStatus.PARTIAL
        except BaseException as exc:
            await window.abandon()
            if pending is not None:  # let the worker stop reading before the caller closes the source
                with contextlib.suppress(BaseException):
                    await pending
            if not saved:
                raise  # the feed was refused before anything happened: no report to keep
            report.status = FeedStatus.FAILED
            report.notes.append(f"import stopped: {exc!r}"[:500])
            await self._finish(report, started, timings)
            raise
        await self._finish(report, started, timings)
        return report

    async def _apply_batch(
        self,
        report: FeedReport,
        batch: _Batch,
        seen: dict[str, int],
        timings: dict[str, float],
        window: _Window,
    ) -> None:
        errors = list(batch.errors)
        fresh: list[tuple[Product, bytes]] = []
        for line, product, fp in batch.items:
            first_line = seen.setdefault(product.product_id, line)
            if first_line != line:
                errors.append(
                    LineError(line, f"duplicate product {product.product_id!r} (first at line {first_line})")
                )
                continue
            fresh.append((product, fp))
        for error in sorted(errors, key=lambda e: e.line):
            report.reject(error)
        if not fresh:
            return
        t0 = time.perf_counter()
        known = await self.store.product_states(report.supplier_id, [p.product_id for p, _ in fresh])
        t1 = time.perf_counter()
        plan = plan_upserts(fresh, known)
        await window.submit(self._publish_then_commit(report.supplier_id, plan.events, plan.states, timings))
        timings["lookup_s"] += t1 - t0
        report.accepted += len(fresh)
        report.unchanged += plan.unchanged
        report.changed += len(plan.events)

    async def _publish_then_commit(
        self,
        supplier_id: str,
        events: Sequence[Envelope],
        states: Sequence[ProductState],
        timings: dict[str, float],
    ) -> None:
        if not events:
            return
        t0 = time.perf_counter()
        await publish_events(self.event_log, events)
        t1 = time.perf_counter()
        await self.store.save_product_states(supplier_id, states)
        timings["publish_s"] += t1 - t0
        timings["commit_s"] += time.perf_counter() - t1

    async def _remove_missing(
        self, report: FeedReport, complete: bool, seen: dict[str, int], timings: dict[str, float]
    ) -> None:
        if not complete:
            report.notes.append("full mode: removals skipped because the feed was not read to its end")
            return
        if report.accepted == 0:
            report.notes.append("full mode: removals skipped because the feed accepted no product")
            return
        live = await self.store.live_products(report.supplier_id)
        plan = plan_removals(report.supplier_id, live, set(seen))
        for i in range(0, len(plan.events), self.batch_lines):
            await self._publish_then_commit(
                report.supplier_id,
                plan.events[i : i + self.batch_lines],
                plan.states[i : i + self.batch_lines],
                timings,
            )
        report.removed = len(plan.events)

    async def _finish(self, report: FeedReport, started: float, timings: dict[str, float]) -> None:
        total = time.perf_counter() - started
        lines = report.accepted + report.rejected
        report.finished_at = datetime.now(UTC)
        report.timings = {
            **{k: round(v, 4) for k, v in timings.items()},
            "total_s": round(total, 4),
            "lines_per_s": round(lines / total, 1) if total > 0 else 0.0,
        }
        try:
            await asyncio.shield(self.store.save_feed(report))
        except Exception:
            log.exception("ingest.save_report_failed", feed_id=report.feed_id)
        if self._on_report is not None:
            self._on_report(report)
        log.info(
            "ingest.feed_done",
            feed_id=report.feed_id,
            supplier_id=report.supplier_id,
            status=str(report.status),
            accepted=report.accepted,
            rejected=report.rejected,
            unchanged=report.unchanged,
            changed=report.changed,
            removed=report.removed,
        )


async def import_path(
    service: IngestService,
    path: Path,
    *,
    supplier_id: str,
    profile: str = "canonical",
    mode: Mode = "delta",
    fmt: FeedFormat | None = None,
    on_read: Callable[[int], None] | None = None,
) -> FeedReport:
    """Import a feed file; its folder is where profiles look for side files (instacart)."""
    fmt = fmt or format_from_filename(path.name)
    with path.open("rb") as fh:
        return await service.import_feed(
            supplier_id, fh, fmt=fmt, profile=profile, mode=mode, source_dir=path.parent, on_read=on_read
        )
