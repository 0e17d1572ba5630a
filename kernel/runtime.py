"""What the app and the CLI share at run time, and the protocol each feature module implements.

Feature packages (ingest, search, inventory, read_models, ...) each expose one ``Module``, built from the
adapters the composition root (``emporium.container``) hands it: a module never opens an adapter.
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
    """Per-process resources shared by modules. Created by the container, never global."""

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
        """Start background tasks (called once, after the container has started every adapter)."""
        ...

    async def stop(self) -> None:
        """Stop background tasks (called before the container closes the adapters)."""
        ...

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        """Name -> coroutine function that raises when the dependency is not usable."""
        ...
