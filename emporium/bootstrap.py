"""The one place where adapters are chosen and modules are wired together."""

from __future__ import annotations

from kernel.eventlog.factory import open_event_log
from kernel.runtime import Module, Runtime
from kernel.settings import Settings


def build_runtime(settings: Settings, *, client_id: str = "emporium") -> Runtime:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Runtime(settings=settings, event_log=open_event_log(settings.event_log_url, client_id=client_id))


def build_modules(runtime: Runtime) -> list[Module]:
    """Every feature module, in start order: inventory before search, whose stock model reads its events."""
    from ingest.module import create_module as ingest_module
    from inventory.module import create_module as inventory_module
    from read_models.module import create_module as read_models_module
    from search.module import create_module as search_module

    return [
        ingest_module(runtime),
        inventory_module(runtime),
        search_module(runtime),
        read_models_module(runtime),
    ]
