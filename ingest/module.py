"""Ingest module wiring (placeholder until the ingest package lands)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from emporium.runtime import ReadinessCheck, Runtime


class IngestModule:
    name = "ingest"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def route_handlers(self) -> Sequence[Any]:
        return []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        return {}


def create_module(runtime: Runtime) -> IngestModule:
    return IngestModule(runtime)
