"""``state.json`` in the stack's base dir: the servers it runs, enough for another process (a later
``emporium services down`` or ``status``) to find, probe and stop them."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import msgspec

from infra.local.services import StackError


class ServerRecord(msgspec.Struct, kw_only=True):
    """One running server."""

    server: str
    pid: int
    #: psutil's start time of ``pid``: tells the server from a later process given a recycled PID.
    #: 0 (a state file written before it was recorded) trusts the PID alone.
    create_time: float = 0.0
    ports: dict[str, int]
    urls: dict[str, str]
    base_dir: str
    data_dir: str
    log_file: str
    command: list[str]
    started_at: float
    startup_seconds: float | None = None


class StackState(msgspec.Struct, kw_only=True):
    servers: dict[str, ServerRecord] = msgspec.field(default_factory=dict)


class StateStore:
    """Reads and writes ``state.json``; ``locked`` serializes every change across processes."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.path = base_dir / "state.json"

    def load(self) -> StackState:
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=StackState)
        except FileNotFoundError:
            return StackState()
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise StackError(f"{self.path} is unreadable ({exc}); stop its servers by hand") from exc

    def save(self, state: StackState) -> None:
        """Write atomically: a reader never sees half a file."""
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_bytes(msgspec.json.format(msgspec.json.encode(state), indent=2))
        tmp.replace(self.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[StackState]:
        """The state under a file lock, so two ``emporium services`` commands never race."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        with (self.base_dir / ".lock").open("w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield self.load()
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
