"""What the app and the CLI share at run time, and the protocol each feature module implements.

Feature packages (ingest, search, inventory, read_models, ...) each expose one ``Module``; the app
factory and the projector runner wire them in one place (``emporium.bootstrap``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry

from kernel.settings import Settings

if TYPE_CHECKING:
    from litestar.types import ControllerRouterHandler

    from kernel.eventlog.port import EventLog

ReadinessCheck = Callable[[], Awaitable[None]]


@dataclass
class Runtime:
    """Per-process resources shared by modules. Created by bootstrap, never global."""

    settings: Settings
    event_log: EventLog
    metrics: CollectorRegistry = field(default_factory=CollectorRegistry)


class Module(Protocol):
    """A feature: its routes, its lifecycle and its readiness checks."""

    name: str

    def route_handlers(self) -> Sequence[ControllerRouterHandler]:
        """Routes to mount; handlers reach the module's services through DI providers."""
        ...

    async def start(self) -> None:
        """Open adapters and start background tasks (called once, after the event log is up)."""
        ...

    async def stop(self) -> None: ...

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        """Name -> coroutine function that raises when the dependency is not usable."""
        ...
