"""The local cluster stack: `emporium services up|status|down` end to end, and LocalStack's guarantees
(a server that cannot start fails with its log, stop escalates to SIGKILL, an interrupted session
leaves no server behind). Real servers throughout; the fake servers below are plain shell processes
used only to drive the failure paths of the process management itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pymysql
import pytest
import redis

from emporium.cli.services import DEFAULT_SERVICES
from infra.local import stack as stack_module
from infra.local import supervisor
from infra.local.stack import (
    SERVICE_ENV,
    SERVICES,
    LaunchPlan,
    LocalStack,
    ServerSpec,
    StackError,
    probe_kafka,
)
from kernel.database import MysqlTarget, parse_database_url

ROOT = Path(__file__).resolve().parents[2]
EMPORIUM = str(Path(sys.executable).with_name("emporium"))


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment minus any EMPORIUM_*_URL, so the stack starts every server itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMPORIUM_")}
    env.update(extra)
    return env


def _emporium(cwd: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 300):
    return subprocess.run(
        [EMPORIUM, "--log-format", "console", "services", *args],
        cwd=cwd,
        env=dict(env) if env is not None else _clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _alive(pid: int) -> bool:
    """Running and not a zombie (a server reparented to init is reaped there, not by us)."""
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False


def _session_members(session_id: int) -> list[int]:
    members = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session_id and _alive(process.pid):
                members.append(process.pid)
        except ProcessLookupError:
            continue
    return members


def _wait_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid in pids if _alive(pid)]
        if not left:
            return []
        time.sleep(0.1)
    return [pid for pid in pids if _alive(pid)]


def _kill_leftovers(pids: list[int]) -> None:
    """Last resort after a failed test, so one failure does not leak servers into the next run."""
    for pid in pids:
        for member in [pid, *_session_members(pid)]:
            if _alive(member):
                os.kill(member, signal.SIGKILL)


# --------------------------------------------------------------------------------------------------
# Real requests, one per service, a little more than the readiness probes do.


def _use_redis(url: str) -> None:
    client = redis.Redis.from_url(url)
    key = f"stack-test:{uuid.uuid4().hex}"
    client.set(key, "ok", ex=60)
    assert client.get(key) == b"ok"
    client.close()


def _use_mysql(url: str) -> None:
    target = parse_database_url(url)
    assert isinstance(target, MysqlTarget)
    db = f"stack_test_{uuid.uuid4().hex[:8]}"
    connection = pymysql.connect(**{**target.pymysql_kwargs(), "autocommit": True})
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@max_connections, @@character_set_server, @@port, @@bind_address")
            max_connections, charset, port, bind = cursor.fetchone()
            assert (max_connections, charset, port, bind) == (2000, "utf8mb4", target.port, "127.0.0.1")
            # The app user may create databases of its own (tests do).
            cursor.execute(f"CREATE DATABASE {db}")
            cursor.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB")
            cursor.execute(f"INSERT INTO {db}.t VALUES (1, 'ok')")
            cursor.execute(f"SELECT v FROM {db}.t WHERE id = 1")
            assert cursor.fetchone() == ("ok",)
            cursor.execute(f"DROP DATABASE {db}")
    finally:
        connection.close()


def _use_kafka(url: str) -> None:
    port = urlsplit(url).port
    assert probe_kafka(url, 5.0) == f"kafka broker 127.0.0.1:{port}"


def _use_elasticsearch(url: str) -> None:
    index = f"stack-test-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=url, timeout=10) as client:
        client.put(f"/{index}").raise_for_status()
        client.put(f"/{index}/_doc/1", params={"refresh": "true"}, json={"title": "ok"}).raise_for_status()
        assert client.get(f"/{index}/_doc/1").json()["_source"] == {"title": "ok"}
        client.delete(f"/{index}").raise_for_status()


def _use_cassandra(url: str) -> None:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    assert url.endswith("/emporium?protocol_version=3")
    port = int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    keyspace = f"stack_test_{uuid.uuid4().hex[:8]}"
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy())
    cluster = Cluster(
        ["127.0.0.1"], port=port, protocol_version=3, execution_profiles={EXEC_PROFILE_DEFAULT: profile}
    )
    try:
        session = cluster.connect()
        replication = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        session.execute(f"CREATE KEYSPACE {keyspace} WITH replication = {replication}")
        session.execute(f"CREATE TABLE {keyspace}.t (id int PRIMARY KEY, v text)")
        session.execute(f"INSERT INTO {keyspace}.t (id, v) VALUES (1, 'ok')")
        assert session.execute(f"SELECT v FROM {keyspace}.t WHERE id = 1").one().v == "ok"
        session.execute(f"DROP KEYSPACE {keyspace}")
    finally:
        cluster.shutdown()


USE = {
    "redis": _use_redis,
    "mariadb": _use_mysql,
    "kafka": _use_kafka,
    "elasticsearch": _use_elasticsearch,
    "cassandra": _use_cassandra,
}


# --------------------------------------------------------------------------------------------------


@pytest.mark.cluster
def test_services_up_status_down_leaves_nothing_behind(tmp_path: Path) -> None:
    up = _emporium(tmp_path, "up")
    state_file = tmp_path / ".stack" / "state.json"
    pids = (
        [s["pid"] for s in json.loads(state_file.read_text())["servers"].values()]
        if state_file.exists()
        else []
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads(state_file.read_text())["servers"]
        assert set(state) == {"redis", "mariadb", "noida", "cassandra"}
        # The servers outlived the CLI that started them.
        assert all(_alive(pid) for pid in pids), up.stdout

        urls = {
            service: state[stack_module.SERVER_OF[service]]["urls"][service] for service in DEFAULT_SERVICES
        }
        env_file = (tmp_path / ".stack" / "urls.env").read_text()
        for service, url in urls.items():
            scheme = url.split("://", 1)[0]
            assert scheme in SERVICE_ENV[service][1] + ("mysql",)
            assert f"export {SERVICE_ENV[service][0]}=" in env_file
            assert url in env_file
        assert urls["kafka"].startswith("kafka://127.0.0.1:")
        assert urls["elasticsearch"].startswith("http://127.0.0.1:")
        assert urls["redis"].startswith("redis://127.0.0.1:") and urls["redis"].endswith("/0")
        assert urls["mariadb"].startswith("mysql://emporium:emporium@127.0.0.1:")
        assert urls["mariadb"].endswith("/emporium?ssl_mode=disabled")
        # Never the machine's own servers.
        assert ":6379/" not in urls["redis"] and ":3306/" not in urls["mariadb"]

        # Sourcing urls.env gives a shell exactly these URLs.
        sourced = subprocess.run(
            ["bash", "-c", f"source {tmp_path / '.stack' / 'urls.env'} && env"],
            capture_output=True, text=True, check=True, env=_clean_env(),
        ).stdout  # fmt: skip
        for service, url in urls.items():
            assert f"{SERVICE_ENV[service][0]}={url}\n" in sourced

        for service, url in urls.items():
            USE[service](url)

        status = _emporium(tmp_path, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        for service in DEFAULT_SERVICES:
            line = next(ln for ln in status.stdout.splitlines() if ln.startswith(service))
            assert "answers" in line and urls[service] in line, status.stdout

        down = _emporium(tmp_path, "down")
        assert down.returncode == 0, down.stdout + down.stderr
        for pid in pids:
            assert f"(pid {pid})" in down.stdout
        assert _wait_gone(pids, timeout=1) == []
        assert [m for pid in pids for m in _session_members(pid)] == []
        assert not (tmp_path / ".stack" / "urls.env").exists()
        assert json.loads(state_file.read_text())["servers"] == {}
        assert sorted(p.name for p in (tmp_path / ".stack").glob("*/data")) == []

        after = _emporium(tmp_path, "status")
        assert after.returncode == 0 and after.stdout.count("not started") == len(SERVICES)
    finally:
        if any(_alive(pid) for pid in pids):
            _emporium(tmp_path, "down", timeout=120)
            _kill_leftovers(pids)


def test_service_given_by_env_is_external_and_not_started(tmp_path: Path, redis_url: str) -> None:
    env = _clean_env(EMPORIUM_CACHE_URL=redis_url)
    up = _emporium(tmp_path, "up", "redis", env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "external" in up.stdout and redis_url in up.stdout
    assert LocalStack(tmp_path / ".stack").pids() == {}
    assert f"export EMPORIUM_CACHE_URL={redis_url}" in (tmp_path / ".stack" / "urls.env").read_text()

    status = _emporium(tmp_path, "status", env=env)
    assert status.returncode == 0, status.stdout
    assert "external, answers" in next(ln for ln in status.stdout.splitlines() if ln.startswith("redis"))
    assert "nothing running" in _emporium(tmp_path, "down", env=env).stdout


def test_unknown_service_is_rejected(tmp_path: Path) -> None:
    result = _emporium(tmp_path, "up", "mongodb")
    assert result.returncode == 2
    assert "unknown service" in result.stderr and "mongodb" in result.stderr


# --------------------------------------------------------------------------------------------------
# Process management, driven by stand-in servers (shell processes) to reach the failure paths fast.


# A stand-in server's listener: the stack probes only a port that its own server listens on.
LISTEN = (
    f"{sys.executable} -c 'import socket, time; s = socket.socket(); "
    's.bind(("127.0.0.1", PORT)); s.listen(); time.sleep(60)\''
)


class ShellSpec(ServerSpec):
    """A stand-in server: any shell script; 'answers' when its probe (patched below) says so."""

    def __init__(self, script: str, *, stop_grace: float = 5.0) -> None:
        self.name = "fake"
        self.services = ("fake",)
        self.port_names = ("fake",)
        self.stop_grace = stop_grace
        self.script = script

    def prepare(self, home: Path, data_dir: Path, ports: Mapping[str, int]) -> LaunchPlan:
        return LaunchPlan(["sh", "-c", self.script.replace("PORT", str(ports["fake"]))])

    def urls(self, ports: Mapping[str, int]) -> dict[str, str]:
        return {"fake": f"fake://127.0.0.1:{ports['fake']}"}


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    """Register a 'fake' service; the test sets ``script``, ``grace`` and the probe's answer."""
    config: dict[str, object] = {"answers": True}

    def fake_probe(url: str, timeout: float) -> str:
        if not config["answers"]:
            raise ConnectionRefusedError("not yet")
        return "fake ok"

    monkeypatch.setitem(stack_module.SERVER_OF, "fake", "fake")
    monkeypatch.setitem(stack_module.PROBES, "fake", fake_probe)

    def install(script: str, grace: float = 5.0) -> None:
        monkeypatch.setitem(stack_module.SPECS, "fake", ShellSpec(script, stop_grace=grace))

    config["install"] = install
    yield config


def test_server_that_exits_raises_stack_error_with_log_tail(tmp_path: Path, fake_server) -> None:
    fake_server["install"]("echo 'fatal: disk on fire' >&2; exit 3")
    stack = LocalStack(tmp_path)
    with pytest.raises(StackError, match=r"(?s)fake exited \(code 3\).*fatal: disk on fire"):
        stack.ensure("fake")
    assert stack.pids() == {}


def test_server_that_never_answers_times_out_and_is_stopped(tmp_path: Path, fake_server) -> None:
    fake_server["install"](f"echo booting; exec {LISTEN}")
    fake_server["answers"] = False
    stack = LocalStack(tmp_path, start_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(StackError, match=r"(?s)did not answer within 1s.*not yet.*booting"):
        stack.ensure("fake")
    assert time.monotonic() - started < 10
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["servers"] == {}
    log = (tmp_path / "fake" / "fake.log").read_text()
    assert "booting" in log  # logs stay for post-mortems


def test_lost_port_race_is_retried_on_new_ports(tmp_path: Path, fake_server) -> None:
    marker = tmp_path / "first-try-done"
    fake_server["install"](
        f"if [ ! -e {marker} ]; then touch {marker}; echo 'bind: Address already in use'; exit 1; fi;"
        f" exec {LISTEN}"
    )
    stack = LocalStack(tmp_path)
    try:
        assert stack.ensure("fake").startswith("fake://127.0.0.1:")
        assert _alive(stack.pids()["fake"])
    finally:
        stack.stop_all()


def test_port_taken_by_another_server_is_never_used(
    tmp_path: Path, fake_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Someone else's server grabs the chosen port first and answers there: the stack must notice
    # that the listener is not its own server and move to other ports, never hand out that URL.
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    real_free_ports = supervisor.free_ports
    calls: list[list[int]] = []

    def first_port_taken(count: int) -> list[int]:
        ports = [taken] if not calls else real_free_ports(count)
        calls.append(ports)
        return ports

    monkeypatch.setattr(supervisor, "free_ports", first_port_taken)
    fake_server["install"](f"sleep 0.5; exec {LISTEN}")
    stack = LocalStack(tmp_path)
    try:
        url = stack.ensure("fake")
        assert url != f"fake://127.0.0.1:{taken}" and len(calls) == 2
    finally:
        stack.stop_all()
        squatter.close()


def test_stop_escalates_to_sigkill_and_sweeps_the_session(tmp_path: Path, fake_server) -> None:
    # Ignores SIGTERM, and has a child of its own that must not outlive it.
    fake_server["install"](f"trap '' TERM; {LISTEN} & wait", grace=0.5)
    stack = LocalStack(tmp_path)
    stack.ensure("fake")
    pid = stack.pids()["fake"]
    time.sleep(0.2)
    assert len(_session_members(pid)) == 2
    started = time.monotonic()
    stack.stop_all()
    assert time.monotonic() - started < 10
    assert not _alive(pid)
    assert _wait_gone(_session_members(pid), timeout=5) == []
    assert stack.pids() == {}


def test_already_running_server_is_reused(tmp_path: Path, fake_server) -> None:
    fake_server["install"](f"exec {LISTEN}")
    stack = LocalStack(tmp_path)
    try:
        url = stack.ensure("fake")
        pid = stack.pids()["fake"]
        # Another LocalStack on the same dir (as `services status` or a second `up` would be).
        assert LocalStack(tmp_path, keep_running=True).ensure("fake") == url
        assert stack.pids()["fake"] == pid
    finally:
        stack.stop_all()
    assert not _alive(pid)


def test_dead_server_restarts_on_its_old_port(tmp_path: Path, fake_server) -> None:
    """Clients keep the URL they were given: `services up` after a crash brings the server back there."""
    fake_server["install"](f"exec {LISTEN}")
    stack = LocalStack(tmp_path)
    try:
        url = stack.ensure("fake")
        pid = stack.pids()["fake"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stack.ensure("fake") == url
        assert stack.pids()["fake"] != pid
    finally:
        stack.stop_all()


def _watchdogs(base_dir: Path) -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process().children()
        if child.cmdline()[-2:] == ["infra.local.watchdog", str(base_dir)] and _alive(child.pid)
    ]


def test_watchdog_runs_only_while_the_owner_has_servers(tmp_path: Path, fake_server) -> None:
    fake_server["install"](f"exec {LISTEN}")
    stack = LocalStack(tmp_path)
    try:
        stack.ensure("fake")
        assert len(_watchdogs(tmp_path)) == 1
    finally:
        stack.stop_all()
    assert _watchdogs(tmp_path) == []
    # A server that fails to start leaves no watchdog behind either.
    fake_server["install"]("exit 3")
    with pytest.raises(StackError):
        stack.ensure("fake")
    assert _watchdogs(tmp_path) == []


_ORPHAN_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from infra.local.stack import LocalStack
    stack = LocalStack(Path(sys.argv[1]))
    stack.ensure("redis")
    print(stack.pids()["redis"], flush=True)
    if sys.argv[2] == "sigkill":      # the test process dies hard: no finalizer, no atexit
        os.kill(os.getpid(), signal.SIGKILL)
    raise KeyboardInterrupt           # Ctrl-C with nobody calling stop_all: atexit must
    """
)


@pytest.mark.cluster
@pytest.mark.parametrize("how", ["keyboard-interrupt", "sigkill"])
def test_interrupted_session_leaves_no_server_behind(tmp_path: Path, how: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _ORPHAN_SCRIPT, str(tmp_path), "sigkill" if how == "sigkill" else "exit"],
        cwd=ROOT, env=_clean_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    pid = int(result.stdout.split()[0])
    try:
        assert _wait_gone([pid], timeout=15) == [], f"redis (pid {pid}) survived: {result.stderr}"
    finally:
        _kill_leftovers([pid])
