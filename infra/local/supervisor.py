"""``LocalStack``: starts servers on free loopback ports under one base dir, waits until each answers a
real request, and stops them by PID. See ``infra.local.stack`` for the two ways it is used."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, stop_when_event_set, wait_fixed

from infra.local.guard import OwnerGuard
from infra.local.ports import accepts_connections, free_ports, ports_free
from infra.local.probes import probe
from infra.local.processes import is_running, listens_on, running_process, stop_servers
from infra.local.servers import SERVER_OF, SPECS, ServerSpec, start_rank
from infra.local.services import SERVICES, StackError
from infra.local.state import ServerRecord, StackState, StateStore

log = logging.getLogger("emporium.stack")

DEFAULT_START_TIMEOUT = float(os.environ.get("EMPORIUM_STACK_START_TIMEOUT", "180"))
#: Seconds between two readiness rounds of a booting server.
POLL_INTERVAL = 0.1
#: How often a server that lost a race for its port is started again on other ports.
PORT_RETRIES = 2
PORT_IN_USE_MARKERS = (
    "already in use",
    "in use by another process",
    "addrinuse",
    "failed to bind",
    "bind on tcp/ip port",
)


def lost_port_race(error: BaseException) -> bool:
    return any(marker in str(error).lower() for marker in PORT_IN_USE_MARKERS)


def log_tail(path: Path, lines: int = 40, width: int = 400) -> str:
    """The end of a server's log, for error messages."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 32768))
            text = fh.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log file)"
    tail = [line if len(line) <= width else line[:width] + " [...]" for line in text.splitlines()[-lines:]]
    return "\n".join(tail) or "(log is empty)"


class NotReady(Exception):
    """A readiness round found a service not answering yet: try again."""


class WaitAborted(StackError):
    """Waiting was given up because another server of the same call failed."""


@dataclass
class Launch:
    """A server this call waits for. ``attempt`` 0: it was running before this call."""

    spec: ServerSpec
    record: ServerRecord
    process: psutil.Popen | None
    attempt: int

    def server(self) -> psutil.Process | None:
        return self.process if self.process is not None else running_process(self.record)


class LocalStack:
    """Real servers on free loopback ports under ``base_dir``; see ``infra.local.stack``."""

    def __init__(
        self,
        base_dir: Path,
        *,
        keep_running: bool = False,
        start_timeout: float = DEFAULT_START_TIMEOUT,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.keep_running = keep_running
        self.start_timeout = start_timeout
        self._store = StateStore(self.base_dir)
        self._lock = threading.RLock()
        self._children: dict[str, psutil.Popen] = {}
        self._guard = OwnerGuard(self.base_dir)
        self._atexit_registered = False

    # ---- public API ------------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self._store.path

    def ensure(self, service: str) -> str:
        """Start ``service`` unless this stack already runs it; return its URL once it answers."""
        return self.ensure_many([service])[service]

    def ensure_many(self, services: Iterable[str]) -> dict[str, str]:
        """Like ``ensure`` for several services; their servers boot in parallel."""
        wanted = list(dict.fromkeys(services))
        for service in wanted:
            if service not in SERVER_OF:
                raise ValueError(f"unknown service {service!r}; choose from {', '.join(SERVICES)}")
        servers = sorted({SERVER_OF[s] for s in wanted}, key=start_rank)
        with self._locked() as state:
            launches: list[Launch] = []
            try:
                for name in servers:
                    launches.append(self._launch(state, name))
                self._await_ready(state, launches)
            except BaseException:
                # A half-started stack is worse than none: stop what this call started.
                started = {launch.spec.name for launch in launches if launch.attempt}
                with contextlib.suppress(StackError):
                    self._stop_records(state, [r for n, r in state.servers.items() if n in started])
                raise
            return {service: state.servers[SERVER_OF[service]].urls[service] for service in wanted}

    def url(self, service: str) -> str | None:
        """The URL of ``service`` if this stack has started it (whether or not it answers now)."""
        record = self._store.load().servers.get(SERVER_OF[service])
        return record.urls[service] if record else None

    def status(self, *, check: bool = True, probe_timeout: float = 3.0) -> dict[str, dict[str, Any]]:
        """Per started service: server, pid, url, log file, whether the process runs and (``check``)
        whether it answers a real request now."""
        state = self._store.load()
        report: dict[str, dict[str, Any]] = {}
        for service in SERVICES:
            record = state.servers.get(SERVER_OF[service])
            if record is not None:
                report[service] = self._service_status(service, record, check, probe_timeout)
        return report

    def pids(self) -> dict[str, int]:
        """PID per started server (for callers that verify nothing is left behind)."""
        return {name: record.pid for name, record in self._store.load().servers.items()}

    def stop_all(self) -> None:
        """Stop every server of this stack by PID, verify each exited, delete their data dirs."""
        if self.state_file.exists():
            with self._locked() as state:
                self._stop_records(state, list(state.servers.values()))
        if self._atexit_registered:
            atexit.unregister(self._stop_at_exit)
            self._atexit_registered = False

    # ---- state ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[StackState]:
        """The thread lock plus the state file's lock."""
        with self._lock, self._store.locked() as state:
            yield state

    def _service_status(
        self, service: str, record: ServerRecord, check: bool, probe_timeout: float
    ) -> dict[str, Any]:
        running = is_running(record)
        answers: bool | None = False
        detail = "not running"
        if running and not check:
            answers, detail = None, "not checked"
        elif running:
            try:
                url = SPECS[record.server].probe_url(service, record.urls)
                detail, answers = probe(service, url, probe_timeout), True
            except Exception as exc:
                detail = f"{type(exc).__name__}: {exc}"
        return {
            "server": record.server,
            "pid": record.pid,
            "url": record.urls[service],
            "running": running,
            "answers": answers,
            "detail": detail,
            "log_file": record.log_file,
            "data_dir": record.data_dir,
            "startup_seconds": record.startup_seconds,
        }

    # ---- start ----------------------------------------------------------------------------------

    def _launch(self, state: StackState, name: str) -> Launch:
        """Reuse the server if it runs; else start it (on its old ports when they are still free:
        clients hold its URL)."""
        record = state.servers.get(name)
        if record and is_running(record):
            return Launch(SPECS[name], record, self._children.get(name), attempt=0)
        previous_ports = None
        if record:
            log.warning("%s (pid %s) is gone; starting a new one", name, record.pid)
            self._discard(state, name)
            previous_ports = record.ports
        return self._spawn(state, SPECS[name], attempt=1, ports=previous_ports)

    def _spawn(
        self, state: StackState, spec: ServerSpec, attempt: int, ports: Mapping[str, int] | None = None
    ) -> Launch:
        spec.check_installed()
        home = self.base_dir / spec.name
        data_dir = home / "data"
        log_file = home / f"{spec.name}.log"
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        if ports is None or set(ports) != set(spec.port_names) or not ports_free(ports.values()):
            ports = dict(zip(spec.port_names, free_ports(len(spec.port_names)), strict=True))
        ports = dict(ports)
        started_at = time.time()  # before prepare: a cold start includes e.g. mariadb-install-db
        plan = spec.prepare(home, data_dir, ports)
        if not self.keep_running:
            self._guard.arm()  # before the server exists: no moment without a guard
        with log_file.open("ab") as log_fh:
            log_fh.write(f"\n=== {time.strftime('%F %T')} starting {spec.name}: {plan.command}\n".encode())
            log_fh.flush()
            process = psutil.Popen(
                plan.command,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                cwd=plan.cwd or home,
                env=dict(os.environ if plan.env is None else plan.env),
                # Own session: a Ctrl-C in the terminal reaches pytest, which stops the servers in
                # order, rather than killing them mid-write; and the session id finds leftovers.
                start_new_session=True,
            )
        record = ServerRecord(
            server=spec.name,
            pid=process.pid,
            create_time=process.create_time(),
            ports=ports,
            urls=spec.urls(ports),
            base_dir=str(home),
            data_dir=str(data_dir),
            log_file=str(log_file),
            command=plan.command,
            started_at=started_at,
        )
        state.servers[spec.name] = record
        self._store.save(state)
        if not self.keep_running:
            self._children[spec.name] = process
            self._register_atexit()
        log.info("started %s (pid %d) on ports %s", spec.name, process.pid, ports)
        return Launch(spec, record, process, attempt)

    def _await_ready(self, state: StackState, launches: list[Launch]) -> None:
        """Wait for every launch side by side (so each ``startup_seconds`` is its own). A server that
        lost a race for its port is started again on other ports; any other failure is raised."""
        pending = list(launches)
        while pending:
            outcomes = self._wait_side_by_side(pending)
            pending = []
            for launch, error in outcomes:
                if error is None:
                    self._mark_ready(state, launch)
                    continue
                if isinstance(error, WaitAborted):
                    continue  # the failure that aborted it is raised in this loop
                self._stop_records(state, [launch.record])
                if not (lost_port_race(error) and 0 < launch.attempt <= PORT_RETRIES):
                    raise error
                log.warning("%s lost a race for its port; retrying on other ports", launch.spec.name)
                retry = self._spawn(state, launch.spec, attempt=launch.attempt + 1)
                launches.append(retry)
                pending.append(retry)

    def _mark_ready(self, state: StackState, launch: Launch) -> None:
        if launch.attempt:
            launch.record.startup_seconds = round(time.time() - launch.record.started_at, 3)
            self._store.save(state)
            log.info("%s answers after %.2fs", launch.spec.name, launch.record.startup_seconds)

    def _wait_side_by_side(self, pending: Sequence[Launch]) -> list[tuple[Launch, StackError | None]]:
        abort = threading.Event()
        pool = ThreadPoolExecutor(max_workers=len(pending), thread_name_prefix="stack-wait")
        try:
            futures = [pool.submit(self._wait_ready, launch, abort) for launch in pending]
            return [(launch, future.result()) for launch, future in zip(pending, futures, strict=True)]
        finally:
            abort.set()  # on Ctrl-C too: the waiters stop after their current round
            pool.shutdown(wait=True)

    def _wait_ready(self, launch: Launch, abort: threading.Event) -> StackError | None:
        """Poll ``launch`` until every service of it answers; the error otherwise (None when ready).
        A failure other than a lost port race aborts the other waiters of the same call."""
        waiting = {service: "not probed yet" for service in launch.spec.services}
        deadline = time.monotonic() + self.start_timeout
        retrying = Retrying(
            stop=stop_after_delay(self.start_timeout) | stop_when_event_set(abort),
            wait=wait_fixed(POLL_INTERVAL),
            retry=retry_if_exception_type(NotReady),
            reraise=True,
        )
        try:
            retrying(self._check_ready, launch, waiting, deadline)
            return None
        except NotReady:
            if abort.is_set():
                return WaitAborted(f"{launch.spec.name}: gave up waiting, another server failed")
            record = launch.record
            reasons = "; ".join(f"{s}: {why}" for s, why in waiting.items())
            error = StackError(
                f"{record.server} (pid {record.pid}) did not answer within {self.start_timeout:.0f}s "
                f"({reasons}); log {record.log_file}:\n{log_tail(Path(record.log_file))}"
            )
        except StackError as exc:
            error = exc
        if not lost_port_race(error):
            abort.set()
        return error

    def _check_ready(self, launch: Launch, waiting: dict[str, str], deadline: float) -> None:
        """One readiness round: probe each service not answering yet. Raises NotReady while any
        does not answer, StackError when the server exited or another process holds its port."""
        record = launch.record
        self._raise_if_exited(launch)
        for service in list(waiting):
            url = launch.spec.probe_url(service, record.urls)
            port = urlsplit(url).port
            if port is not None and not self._own_port_open(launch, port):
                waiting[service] = f"port {port} not open yet"
                continue
            try:
                probe(service, url, timeout=min(5.0, max(0.5, deadline - time.monotonic())))
                del waiting[service]
            except Exception as exc:
                waiting[service] = f"{type(exc).__name__}: {exc}"
        if waiting:
            raise NotReady("; ".join(waiting.values()))

    @staticmethod
    def _raise_if_exited(launch: Launch) -> None:
        record = launch.record
        if launch.process is not None:
            exit_code = launch.process.poll()
            if exit_code is None:
                return
        elif is_running(record):
            return
        else:
            exit_code = None
        raise StackError(
            f"{record.server} exited (code {exit_code}) before answering; "
            f"log {record.log_file}:\n{log_tail(Path(record.log_file))}"
        )

    @staticmethod
    def _own_port_open(launch: Launch, port: int) -> bool:
        """Whether the server listens on ``port`` (then it may be probed). Raises StackError when
        another process listens there: after a lost race for the port, a stranger may answer."""
        server = launch.server()
        if server is not None and listens_on(server, port):
            return True
        if not accepts_connections(port):
            return False
        if server is not None and listens_on(server, port):  # began listening in between
            return True
        record = launch.record
        raise StackError(
            f"{record.server}: port {port} is already in use by another process; "
            f"log {record.log_file}:\n{log_tail(Path(record.log_file), lines=10)}"
        )

    # ---- stop -----------------------------------------------------------------------------------

    def _stop_records(self, state: StackState, records: Sequence[ServerRecord]) -> None:
        """Stop ``records``' servers, forget them and delete their data (logs stay for post-mortems)."""
        survivors = stop_servers(records, grace_of=lambda server: SPECS[server].stop_grace)
        for record in records:
            if f"{record.server} (pid {record.pid})" in survivors:
                continue
            child = self._children.pop(record.server, None)
            if child is not None:
                child.poll()  # reaps it if it exited on its own (no zombie left behind)
            state.servers.pop(record.server, None)
            shutil.rmtree(record.data_dir, ignore_errors=True)
        self._store.save(state)
        if survivors:
            raise StackError(f"still running after SIGKILL: {', '.join(survivors)}")
        if not state.servers:
            self._guard.release()

    def _discard(self, state: StackState, name: str) -> None:
        record = state.servers.pop(name)
        self._children.pop(name, None)
        shutil.rmtree(record.data_dir, ignore_errors=True)
        self._store.save(state)

    def _register_atexit(self) -> None:
        if not self._atexit_registered:
            atexit.register(self._stop_at_exit)
            self._atexit_registered = True

    def _stop_at_exit(self) -> None:
        try:
            self.stop_all()
        except Exception as exc:  # at exit there is nobody left to raise to
            print(f"emporium stack: stopping servers at exit failed: {exc}", file=sys.stderr)
