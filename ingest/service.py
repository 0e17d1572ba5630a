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
supplier runs at a time (a lease in the ingest store, renewed in the background for as long as the
import runs, however long one batch takes): two concurrent imports would both read revision N and
publish different N+1s. Products named twice in one feed are rejected after the first occurrence.

An import can be stopped from outside (``ImportStop``: the HTTP client went away) or lose its lease;
it then stops at the next chunk it reads or the next batch, lets the batches in flight finish, and
keeps its report as ``failed`` with what was published until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import structlog

from ingest.auth import SUPPLIER_KEY_PREFIX, KeyHasher
from ingest.batches import Batch, PublishWindow, prepare_batch
from ingest.errors import (
    Conflict,
    Forbidden,
    ImportStop,
    ImportStopped,
    IngestError,
    InvalidRequest,
    NotFound,
    Unauthorized,
    stop_reason,
)
from ingest.identities import OWNER_ID, OWNER_ID_RULE, SUPPLIER, Identities
from ingest.model import (
    PRODUCER,
    FeedReport,
    FeedStatus,
    Mode,
    ProductState,
    SupplierRecord,
    plan_removals,
    plan_upserts,
)
from ingest.parsing import (
    FeedFormat,
    FeedLimits,
    FeedReader,
    LineError,
    ReadStopped,
    format_from_filename,
)
from ingest.profiles import Profile, get_profile
from ingest.reports import finish_report
from ingest.store import IngestStore, SupplierExists
from ingest.validation import DEFAULT_STOCK_WAREHOUSE, MAX_QUANTITY
from kernel.contracts.events import Envelope, Product, SupplierOnboarded, new_event
from kernel.eventlog.port import EventLog
from kernel.eventlog.processing import publish_events

log = structlog.get_logger(__name__)

__all__ = [
    "DEFAULT_STOCK_WAREHOUSE",
    "Conflict",
    "Forbidden",
    "ImportStop",
    "ImportStopped",
    "IngestError",
    "IngestService",
    "InvalidRequest",
    "NotFound",
    "Unauthorized",
    "import_path",
]

DEFAULT_BATCH_LINES = 2000
IMPORT_LEASE_S = 120.0  # renewed in the background; outlives a crashed importer by at most this long
SUPPLIER_ID = OWNER_ID


class _ImportRun:
    """One import while it runs: what its steps share, and what a failure must wind down."""

    def __init__(
        self,
        reader: FeedReader,
        report: FeedReport,
        mapper: Profile,
        batch_lines: int,
        window: PublishWindow,
        stop: ImportStop,
        default_stock: int | None = None,
    ) -> None:
        self.reader = reader
        self.report = report
        self.mapper = mapper
        self.window = window
        self.stop = stop
        self.records = reader.records()
        self.seen: dict[str, int] = {}  # product id -> first line naming it
        self.timings = {"prepare_s": 0.0, "lookup_s": 0.0, "publish_s": 0.0, "commit_s": 0.0}
        self.saved = False  # the report is stored: from here on a failure is reported, not only raised
        self.pending: asyncio.Future[Batch] | None = None  # the next batch, prepared in a worker thread
        self._batch_lines = batch_lines
        self._default_stock = default_stock

    def prepare(self) -> asyncio.Future[Batch]:
        return asyncio.ensure_future(
            asyncio.to_thread(
                prepare_batch,
                self.records,
                self.mapper,
                self.report.supplier_id,
                self._batch_lines,
                self._default_stock,
            )
        )

    async def wind_down(self) -> None:
        """After a failure: let in-flight publishes finish, and the worker stop reading before the
        caller closes the source."""
        await self.window.abandon()
        if self.pending is not None:
            with contextlib.suppress(BaseException):
                await self.pending


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
        lease_s: float = IMPORT_LEASE_S,
    ) -> None:
        self.store = store
        self.event_log = event_log
        self.identities = Identities(store, KeyHasher(key_secret))
        self.batch_lines = batch_lines
        self.publish_window = publish_window
        self._on_report = on_report
        self.lease_s = lease_s

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
        default_stock: int | None = None,
        limits: FeedLimits = FeedLimits(),
        stop: ImportStop | None = None,
    ) -> FeedReport:
        """Import one feed body. Raises FeedError (whole feed unusable) before anything is published;
        FeedTooLarge or ImportStopped once it is found too large or is stopped (the report is kept).

        ``default_stock``: units (in warehouse DEFAULT_STOCK_WAREHOUSE) of each product whose line names no
        stock, for catalogs without stock columns; None leaves such products without stock."""
        started = time.perf_counter()
        if mode not in ("delta", "full"):
            raise InvalidRequest(f"mode must be 'delta' or 'full', got {mode!r}")
        if default_stock is not None and not 0 <= default_stock <= MAX_QUANTITY:
            raise InvalidRequest(f"default_stock must be between 0 and {MAX_QUANTITY}, got {default_stock}")
        if await self.store.get_supplier(supplier_id) is None:
            raise NotFound(f"unknown supplier {supplier_id!r}")
        mapper = get_profile(profile, supplier_id, source_dir=source_dir)
        feed_id = uuid.uuid4().hex
        if not await self.store.acquire_import_lease(supplier_id, feed_id, self.lease_s):
            raise Conflict(
                f"another feed of supplier {supplier_id!r} is being imported; retry when it is done"
            )
        stop = stop or ImportStop()
        holder = asyncio.create_task(self._hold_lease(supplier_id, feed_id, stop), name=f"lease-{feed_id}")
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
                default_stock=default_stock,
                limits=limits,
                stop=stop,
            )
        finally:
            holder.cancel()
            with contextlib.suppress(BaseException):
                await holder
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.release_import_lease(supplier_id, feed_id))

    async def _hold_lease(self, supplier_id: str, feed_id: str, stop: ImportStop) -> None:
        """Renew the lease while the import runs; if another import took it over, stop this one."""
        while True:
            await asyncio.sleep(self.lease_s / 4)
            try:
                held = await self.store.acquire_import_lease(supplier_id, feed_id, self.lease_s)
            except Exception:
                log.warning("ingest.lease_renewal_failed", feed_id=feed_id, exc_info=True)
                continue
            if not held:
                stop.stop("the import lease expired and another import took over; re-push the feed")
                return

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
        default_stock: int | None,
        limits: FeedLimits,
        stop: ImportStop,
    ) -> FeedReport:
        reader = await asyncio.to_thread(
            FeedReader,
            source,
            fmt,
            on_read=on_read,
            max_bytes=limits.max_bytes,
            max_line_bytes=limits.max_line_bytes,
            should_stop=stop.requested,
        )
        report = FeedReport(
            feed_id=feed_id,
            supplier_id=supplier_id,
            profile=mapper.name,
            mode=mode,
            format=str(fmt),
            created_at=datetime.now(UTC),
        )
        run = _ImportRun(
            reader, report, mapper, self.batch_lines, PublishWindow(self.publish_window), stop, default_stock
        )
        try:
            first = await self._open_feed(run)
            await self._apply_batches(run, first)
            await self._conclude(run)
        except BaseException as exc:
            await run.wind_down()
            if not run.saved:
                raise  # the feed was refused before anything happened: no report to keep
            report.status = FeedStatus.FAILED
            report.bytes_read = reader.bytes_read
            report.notes.append(f"import stopped: {stop_reason(exc, stop)}"[:500])
            await self._finish(report, started, run.timings)
            if isinstance(exc, ReadStopped):
                raise ImportStopped(stop.reason or str(exc)) from None
            raise
        await self._finish(report, started, run.timings)
        return report

    async def _open_feed(self, run: _ImportRun) -> Batch:
        """Read the first batch and check the columns, then save the report: a feed refused here leaves
        nothing behind."""
        batch = await run.prepare()
        if run.reader.columns is not None:
            run.mapper.check_columns(run.reader.columns)  # FeedError -> refused, nothing published
        await self.store.save_feed(run.report)
        run.saved = True
        return batch

    async def _apply_batches(self, run: _ImportRun, batch: Batch) -> None:
        while True:
            # Pipeline: the worker thread parses batch N+1 while batch N is published and committed.
            run.stop.check()
            run.pending = None if batch.exhausted else run.prepare()
            await self._apply_batch(run, batch)
            run.timings["prepare_s"] += batch.elapsed
            if run.pending is None:
                break
            batch, run.pending = await run.pending, None
        await run.window.drain()

    async def _conclude(self, run: _ImportRun) -> None:
        report, reader = run.report, run.reader
        run.stop.check()
        report.bytes_read = reader.bytes_read
        if report.mode == "full":
            await self._remove_missing(report, reader.complete, run.seen, run.timings)
        report.status = FeedStatus.COMPLETED if reader.complete else FeedStatus.PARTIAL

    async def _apply_batch(self, run: _ImportRun, batch: Batch) -> None:
        report, seen, timings = run.report, run.seen, run.timings
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
        await run.window.submit(
            self._publish_then_commit(report.supplier_id, plan.events, plan.states, timings)
        )
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
        await finish_report(
            self.store,
            report,
            started,
            self._on_report,
            done="ingest.feed_done",
            save_failed="ingest.save_report_failed",
            stages=timings,
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
    default_stock: int | None = None,
    limits: FeedLimits = FeedLimits(),
) -> FeedReport:
    """Import a feed file; its folder is where profiles look for side files (instacart)."""
    fmt = fmt or format_from_filename(path.name)
    with path.open("rb") as fh:
        return await service.import_feed(
            supplier_id,
            fh,
            fmt=fmt,
            profile=profile,
            mode=mode,
            source_dir=path.parent,
            on_read=on_read,
            default_stock=default_stock,
            limits=limits,
        )
