"""The archive as a background service: in-process under ``serve`` (``inprocess_projectors``, the embedded
default) and under ``emporium project`` otherwise. A failure (lake unreachable, disk full) is logged and
retried with backoff; nothing was committed for the failed flush, so the retry re-reads it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from analytics.archive.consumer import ARCHIVE_GROUP, MAX_AGE_S, MAX_ROWS, Archiver
from analytics.archive.lake import Lake
from kernel.eventlog.port import EventLog
from kernel.runtime import ReadinessCheck, Runtime
from kernel.tasks import cancel_and_wait

if TYPE_CHECKING:
    from litestar.types import ControllerRouterHandler

log = structlog.get_logger(__name__)

RETRY_MAX_S = 60.0
STOP_TIMEOUT_S = 30.0


class ArchiveTask:
    """Runs an ``Archiver`` until stopped, starting it afresh (crash recovery included) after a failure."""

    def __init__(
        self,
        event_log: EventLog,
        lake_url: str,
        *,
        group: str = ARCHIVE_GROUP,
        max_rows: int = MAX_ROWS,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        self.event_log = event_log
        self.lake_url = lake_url
        self.group = group
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self.archiver: Archiver | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="analytics-archive")

    async def _run(self) -> None:
        delay = 1.0
        while not self._stopping.is_set():
            self.archiver = Archiver(
                self.event_log,
                Lake(self.lake_url),
                group=self.group,
                max_rows=self.max_rows,
                max_age_s=self.max_age_s,
            )
            try:
                await self.archiver.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("archive failed; retrying", error=repr(exc), retry_in_s=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def stop(self) -> None:
        """Flush what is pending (a last file group, then the commit) and leave the group."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        if self.archiver is not None:
            self.archiver.stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT_S)
        except (TimeoutError, Exception) as exc:
            log.warning("archive stopped without its last flush", error=repr(exc))
            await cancel_and_wait([task])


class ArchiveModule:
    """The analytics feature of the app: no routes yet, the archive in-process when projectors are."""

    name = "analytics"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.task: ArchiveTask | None = None

    def route_handlers(self) -> Sequence[ControllerRouterHandler]:
        return []

    async def start(self) -> None:
        settings = self.runtime.settings
        if settings.inprocess_projectors:
            self.task = ArchiveTask(
                self.runtime.event_log, settings.lake_url, max_age_s=settings.archive_flush_s
            )
            self.task.start()

    async def stop(self) -> None:
        if self.task is not None:
            await self.task.stop()
            self.task = None

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        return {}
