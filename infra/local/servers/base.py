"""What a server recipe provides: how to lay out, launch and address one kind of server."""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.local.services import StackError


@dataclass(frozen=True)
class LaunchPlan:
    """The command that runs a server in the foreground, with its environment and working dir."""

    command: list[str]
    env: dict[str, str] | None = None
    cwd: Path | None = None


class ServerSpec(ABC):
    """How to run one server. It provides ``services`` and needs the ports in ``port_names``."""

    name: str = ""
    services: tuple[str, ...] = ()
    port_names: tuple[str, ...] = ()
    #: Seconds between SIGTERM and SIGKILL. Generous: a forced kill of noida-db or Cassandra loses writes.
    stop_grace: float = 30.0

    @abstractmethod
    def prepare(self, home: Path, data_dir: Path, ports: Mapping[str, int]) -> LaunchPlan:
        """Lay out config and data under ``home`` and ``data_dir``; return the launch command."""

    @abstractmethod
    def urls(self, ports: Mapping[str, int]) -> dict[str, str]:
        """The URL of each service of this server on ``ports``."""

    def probe_url(self, service: str, urls: Mapping[str, str]) -> str:
        """The URL the readiness probe of ``service`` asks (by default the service's own URL)."""
        return urls[service]

    def check_installed(self) -> None:  # noqa: B027 - most servers have nothing to check
        """Raise StackError naming the install step when the server's binaries are missing."""


def require(executable: str, hint: str, *extra_dirs: str) -> str:
    """The path of ``executable`` (on PATH or in ``extra_dirs``); StackError with ``hint`` if absent."""
    found = shutil.which(executable) or next(
        (str(Path(d) / executable) for d in extra_dirs if (Path(d) / executable).exists()), None
    )
    if not found:
        raise StackError(f"{executable} not found; {hint}")
    return found
