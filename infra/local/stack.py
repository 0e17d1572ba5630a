"""The local cluster stack: real Redis, MariaDB, noida-db (Kafka + Elasticsearch) and Cassandra 2.1.

One ``LocalStack`` owns a base directory. Each server gets free loopback ports, a throw-away data dir
and a log file under it, and counts as started only once it answers a real request (PING, ``SELECT 1``
as the app user, a Kafka Metadata request, ``GET /``, a CQL query). Servers are stopped by their own
PID (SIGTERM, wait, SIGKILL only as a last resort) and their exit is verified.

Two ways to use it, sharing this code:

* pytest (``tests/conftest.py``): ``LocalStack(tmp)``. The servers belong to the test session: they
  are stopped by the fixture finalizer, by ``atexit`` when the interpreter exits early, and (Linux)
  get SIGTERM from the kernel if the test process dies without running either (``PR_SET_PDEATHSIG``).
* ``emporium services up|down|status``: ``LocalStack(Path(".stack"), keep_running=True)``. The servers
  outlive the command; ``state.json`` in the base dir lets a later ``down`` or ``status`` find them.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import functools
import json
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

log = logging.getLogger("emporium.stack")

SERVICES: tuple[str, ...] = ("redis", "mariadb", "kafka", "elasticsearch", "cassandra")

#: The env var that names each service's external server, and the URL schemes that count as one.
SERVICE_ENV: dict[str, tuple[str, tuple[str, ...]]] = {
    "kafka": ("EMPORIUM_EVENT_LOG_URL", ("kafka",)),
    "elasticsearch": ("EMPORIUM_SEARCH_URL", ("http", "https", "elasticsearch")),
    "redis": ("EMPORIUM_CACHE_URL", ("redis", "rediss")),
    "mariadb": ("EMPORIUM_DATABASE_URL", ("mysql", "mariadb")),
    "cassandra": ("EMPORIUM_RECOMMENDATIONS_URL", ("cassandra",)),
}

APP_USER = APP_PASSWORD = APP_DATABASE = "emporium"
CASSANDRA_PROTOCOL_VERSION = 3
HERE = Path(__file__).resolve().parent
CASSANDRA_HOME = HERE / "vendor" / "apache-cassandra-2.1.0"
DEFAULT_START_TIMEOUT = float(os.environ.get("EMPORIUM_STACK_START_TIMEOUT", "180"))
_PORT_IN_USE_MARKERS = (
    "already in use",
    "in use by another process",
    "addrinuse",
    "failed to bind",
    "bind on tcp/ip port",
)


class StackError(RuntimeError):
    """A server could not be started, did not answer, or would not stop. Carries the log's tail."""


def external_url(service: str, env: Mapping[str, str] | None = None) -> str | None:
    """The URL of an externally given server for ``service``, or None when it should be started here."""
    env_var, schemes = SERVICE_ENV[service]
    value = (os.environ if env is None else env).get(env_var, "")
    return value if value.split("://", 1)[0] in schemes else None


# --------------------------------------------------------------------------------------------------
# Probes: one real request per service. Each raises on failure and returns a short description.


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def probe_redis(url: str, timeout: float) -> str:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        if not client.ping():
            raise StackError(f"redis at {url} did not answer PING")
        return f"redis {client.info('server').get('redis_version', '?')}"
    finally:
        client.close()


def probe_mysql(url: str, timeout: float) -> str:
    import pymysql

    from kernel.database import MysqlTarget, parse_database_url

    target = parse_database_url(url)
    if not isinstance(target, MysqlTarget):
        raise StackError(f"{url!r} is not a mysql:// URL")
    connection = pymysql.connect(
        **target.pymysql_kwargs(),
        connect_timeout=max(1, int(timeout)),
        read_timeout=max(1, int(timeout)),
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1, VERSION()")
            row = cursor.fetchone()
        if not row or row[0] != 1:
            raise StackError(f"mysql at {url}: SELECT 1 returned {row!r}")
        return f"mysql {row[1]}"
    finally:
        connection.close()


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def probe_kafka(url: str, timeout: float) -> str:
    """Send a Kafka Metadata v0 request (all topics) and require at least one broker in the answer.

    Raw wire protocol on purpose: it stays synchronous, so it works inside a running event loop too.
    """
    host, port = _host_port(url, 9092)
    client_id = b"emporium-stack"
    correlation_id = 7
    header = struct.pack(">hhih", 3, 0, correlation_id, len(client_id)) + client_id
    request = header + struct.pack(">i", 0)  # empty topic array = metadata for all topics
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        payload = _recv_exact(sock, size)
    got_id, broker_count = struct.unpack_from(">ii", payload, 0)
    if got_id != correlation_id:
        raise StackError(f"kafka at {url}: correlation id {got_id}, expected {correlation_id}")
    if broker_count < 1:
        raise StackError(f"kafka at {url}: metadata lists no broker")
    offset = 8
    _node_id, host_len = struct.unpack_from(">ih", payload, offset)
    offset += 6
    broker_host = payload[offset : offset + host_len].decode()
    (broker_port,) = struct.unpack_from(">i", payload, offset + host_len)
    return f"kafka broker {broker_host}:{broker_port}"


def probe_elasticsearch(url: str, timeout: float) -> str:
    import httpx

    response = httpx.get(url.rstrip("/") + "/", timeout=timeout)
    response.raise_for_status()
    version = response.json().get("version", {}).get("number")
    if not version:
        raise StackError(f"elasticsearch at {url}: GET / has no version: {response.text[:200]}")
    return f"elasticsearch {version}"


def probe_cassandra(url: str, timeout: float) -> str:
    from urllib.parse import parse_qs

    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    parts = urlsplit(url)
    host, port = _host_port(url, 9042)
    query = parse_qs(parts.query)
    protocol_version = int(query.get("protocol_version", [str(CASSANDRA_PROTOCOL_VERSION)])[0])
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=timeout)
    cluster = Cluster(
        [host],
        port=port,
        protocol_version=protocol_version,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=timeout,
        control_connection_timeout=timeout,
    )
    try:
        session = cluster.connect()
        row = session.execute("SELECT release_version FROM system.local").one()
        if row is None:
            raise StackError(f"cassandra at {url}: system.local is empty")
        return f"cassandra {row.release_version}"
    finally:
        cluster.shutdown()


PROBES: dict[str, Callable[[str, float], str]] = {
    "redis": probe_redis,
    "mariadb": probe_mysql,
    "kafka": probe_kafka,
    "elasticsearch": probe_elasticsearch,
    "cassandra": probe_cassandra,
}


def probe(service: str, url: str, timeout: float = 3.0) -> str:
    """Make one real request to ``service`` at ``url``; raise if it does not answer."""
    return PROBES[service](url, timeout)


# --------------------------------------------------------------------------------------------------
# Processes


class ServerRecord(msgspec.Struct, kw_only=True):
    """One running server as written to state.json (enough for another process to find and stop it)."""

    server: str
    pid: int
    start_ticks: int  # /proc/PID/stat starttime: guards against a recycled PID
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


@dataclass(frozen=True)
class _ProcInfo:
    state: str
    session: int
    start_ticks: int


def _proc_info(pid: int) -> _ProcInfo | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return _ProcInfo(state=fields[0], session=int(fields[3]), start_ticks=int(fields[19]))


def _alive(pid: int, start_ticks: int | None = None) -> bool:
    """True while ``pid`` runs (zombies count as exited) and, if given, is the process we started."""
    info = _proc_info(pid)
    if info is None or info.state in ("Z", "X"):
        return False
    return start_ticks is None or info.start_ticks == start_ticks


def _session_members(record: ServerRecord) -> list[int]:
    """Live processes left in a server's session (each server leads its own), started after it."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _proc_info(int(entry.name))
            if (
                info
                and info.session == record.pid
                and info.start_ticks >= record.start_ticks
                and info.state not in ("Z", "X")
            ):
                members.append(int(entry.name))
    return members


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: dlopen between fork and exec could deadlock
_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal() -> None:
    """Runs in the child between fork and exec: SIGTERM it when the spawning thread dies, so even a
    test process killed with SIGKILL (no finalizer, no atexit) leaves no server behind."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports; all sockets are held until every port is chosen."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _ports_free(ports: Iterable[int]) -> bool:
    """Whether every port can be bound on loopback now (as a server with SO_REUSEADDR would)."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _listening_inodes(port: int) -> set[int]:
    """Socket inodes listening on TCP ``port`` (any address), from /proc/net/tcp{,6}."""
    inodes: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(int(fields[9]))
    return inodes


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def _tail(path: Path, lines: int = 40, width: int = 400) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 32768))
            text = fh.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log file)"
    tail = [line if len(line) <= width else line[:width] + " [...]" for line in text.splitlines()[-lines:]]
    return "\n".join(tail) or "(log is empty)"


# --------------------------------------------------------------------------------------------------
# Server recipes: how to lay out, launch and address each server.


@dataclass(frozen=True)
class LaunchPlan:
    command: list[str]
    env: dict[str, str] | None = None
    cwd: Path | None = None


class ServerSpec:
    """How to run one server. ``services`` it provides; ``port_names`` it needs allocated."""

    name: str = ""
    services: tuple[str, ...] = ()
    port_names: tuple[str, ...] = ()
    #: Seconds between SIGTERM and SIGKILL. Generous: a forced kill of noida-db or Cassandra loses writes.
    stop_grace: float = 30.0

    def prepare(self, home: Path, data_dir: Path, ports: Mapping[str, int]) -> LaunchPlan:
        raise NotImplementedError

    def urls(self, ports: Mapping[str, int]) -> dict[str, str]:
        raise NotImplementedError

    def check_installed(self) -> None:
        """Raise StackError naming the install step when the server's binaries are missing."""


def _require(executable: str, hint: str, *extra_dirs: str) -> str:
    found = shutil.which(executable) or next(
        (str(Path(d) / executable) for d in extra_dirs if (Path(d) / executable).exists()), None
    )
    if not found:
        raise StackError(f"{executable} not found; {hint}")
    return found


class RedisSpec(ServerSpec):
    name = "redis"
    services = ("redis",)
    port_names = ("redis",)
    stop_grace = 15.0

    def check_installed(self) -> None:
        _require("redis-server", "install it: apt-get install redis-server (infra/bootstrap.sh does)")

    def prepare(self, home: Path, data_dir: Path, ports: Mapping[str, int]) -> LaunchPlan:
        redis = _require("redis-server", "apt-get install redis-server")
        return LaunchPlan(
            [
                redis,
                "--port", str(ports["redis"]),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(data_dir),
                "--daemonize", "no",
                "--logfile", "",
                "--maxclients", "10000",
            ]
        )  # fmt: skip

    def urls(self, ports: Mapping[str, int]) -> dict[str, str]:
        return {"redis": f"redis://127.0.0.1:{ports['redis']}/0"}


class MariadbSpec(ServerSpec):
    """MariaDB sized for tests. Durability stays on (innodb_flush_log_at_trx_commit=1): inventory
    is the source of truth and its crash/restart tests must see what production would."""

    name = "mariadb"
    services = ("mariadb",)
    port_names = ("mariadb",)
    stop_grace = 60.0

    SETTINGS: tuple[str, ...] = (
        "--max-connections=2000",
        "--innodb-buffer-pool-size=256M",
        "--innodb-log-file-size=64M",
        "--innodb-flush-log-at-trx-commit=1",
        "--performance-schema=OFF",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_unicode_ci",
        "--max-allowed-packet=64M",
        "--skip-log-bin",
    )

    def check_installed(self) -> None:
        _require("mariadbd", "install it: apt-get install mariadb-server", "/usr/sbin")
        _require("mariadb-install-db", "install it: apt-get install mariadb-server")

    def prepare(self, home: Path, data_dir: Path, ports: Mapping[str, int]) -> LaunchPlan:
        mariadbd = _require("mariadbd", "apt-get install mariadb-server", "/usr/sbin")
        install_db = _require("mariadb-install-db", "apt-get install mariadb-server")
        run_dir = _short_dir(home / "run")
        tmp_dir = data_dir.parent / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        # --no-defaults first everywhere: never read /etc/mysql (its socket and port are the system
        # server's, which must not be touched).
        bootstrap = subprocess.run(
            [
                install_db, "--no-defaults", f"--datadir={data_dir}", "--user=root",
                "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
                # --force: no host name lookup, so a machine without /etc/hosts or DNS works too.
                "--force", "--innodb-log-file-size=64M",
            ],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
        )  # fmt: skip
        if bootstrap.returncode != 0:
            raise StackError(f"mariadb-install-db failed:\n{bootstrap.stdout[-4000:]}")
        init_file = home / "init.sql"
        users = [f"'{APP_USER}'@'127.0.0.1'", f"'{APP_USER}'@'localhost'"]
        init_file.write_text(
            f"CREATE DATABASE IF NOT EXISTS `{APP_DATABASE}`;\n"
            + "".join(f"CREATE USER IF NOT EXISTS {u} IDENTIFIED BY '{APP_PASSWORD}';\n" for u in users)
            # ON *.*: tests create databases of their own.
            + "".join(f"GRANT ALL PRIVILEGES ON *.* TO {u};\n" for u in users)
        )
        return LaunchPlan(
            [
                mariadbd, "--no-defaults", f"--datadir={data_dir}", "--user=root",
                f"--socket={run_dir / 'mariadb.sock'}", f"--pid-file={run_dir / 'mariadb.pid'}",
                f"--port={ports['mariadb']}", "--bind-address=127.0.0.1", "--skip-name-resolve",
                f"--tmpdir={tmp_dir}", f"--init-file={init_file}", *self.SETTINGS,
            ]
        )  # fmt: skip

    def urls(self, ports: Mapping[str, int]) -> dict[str, str]:
        return {"mariadb": f"mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{ports['mariadb']}/{APP_DATABASE}"}


def _short_dir(preferred: Path) -> Path:
    """A dir for unix sockets: ``preferred`` unless its path is too long for sun_path (108 bytes)."""
    if len(str(preferred / "mariadb.sock")) < 100:
        preferred.mkdir(parents=True, exist_ok=True)
        return preferred
    return Path(tempfile.mkdtemp(prefix="emporium-stack-"))


def noida_binary() -> Path:
    """The noida-db executable itself, not its Python wrapper: the wrapper does not forward SIGTERM,
    so stopping it by PID would orphan the real server."""
    try:
        from importlib.resources import files

        path = Path(str(files("noida_db").joinpath("noida-db")))
    except ModuleNotFoundError as exc:
        raise StackError("noida-db is not installed: pip install noida-db==0.2.3 (the dev extra)") from exc
    if not path.is_file():
        raise StackError(f"noida-db binary missing at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


class NoidaSpec(ServerSpec):
    name = "noida"
    services = ("kafka", "elasticsearch")
    port_names = ("kafka", "elasticsearch")
    stop_grace = 30.0

    def check_installed(self) -> None:
        noida_binary()

    def prepare(self, home: Path, data_dir: Path, ports: Mapping[str, int]) -> LaunchPlan:
        return LaunchPlan(
            [
                str(noida_binary()), "start", "--only", "elasticsearch,kafka",
                "--host", "127.0.0.1",
                "--elasticsearch-port", str(ports["elasticsearch"]),
                "--kafka-port", str(ports["kafka"]),
                "--data-dir", str(data_dir),
            ],
            cwd=home,
        )  # fmt: skip

    def urls(self, ports: Mapping[str, int]) -> dict[str, str]:
        return {
            "kafka": f"kafka://127.0.0.1:{ports['kafka']}",
            "elasticsearch": f"http://127.0.0.1:{ports['elasticsearch']}",
        }


@functools.cache
def _java_major(java: str) -> int:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return 0
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def find_java() -> str:
    """A Java >= 11 (``--add-opens``): $EMPORIUM_JAVA, $JAVA_HOME, PATH, then /usr/lib/jvm/*."""
    candidates = [
        os.environ.get("EMPORIUM_JAVA"),
        str(Path(os.environ["JAVA_HOME"]) / "bin" / "java") if os.environ.get("JAVA_HOME") else None,
        shutil.which("java"),
        *sorted((str(p) for p in Path("/usr/lib/jvm").glob("*/bin/java")), reverse=True),
    ]
    seen: list[str] = []
    for java in candidates:
        if java and java not in seen and Path(java).exists():
            seen.append(java)
            if _java_major(java) >= 11:
                return java
    found = ", ".join(f"{j} ({_java_major(j)})" for j in seen) or "none"
    raise StackError(f"Cassandra needs Java >= 11 (found: {found}); apt-get install openjdk-17-jre-headless")


@functools.cache
def _java_base_packages(java: str) -> tuple[str, ...]:
    """Every package of java.base: Cassandra 2.1 predates modules and reflects into many of them."""
    out = subprocess.run(
        [java, "--describe-module", "java.base"], capture_output=True, text=True, check=True
    ).stdout
    packages: set[str] = set()
    for line in out.splitlines():
        words = line.split()
        if words[:2] == ["qualified", "exports"] or words[:2] == ["qualified", "opens"]:
            packages.add(words[2])
        elif words and words[0] in ("exports", "contains", "opens") and len(words) > 1:
            packages.add(words[1])
    return tuple(sorted(packages))


_CASSANDRA_LOGBACK = """<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level %date{HH:mm:ss,SSS} [%thread] %logger{0} %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
  <logger name="com.thinkaurelius.thrift" level="ERROR"/>
</configuration>
"""


class CassandraSpec(ServerSpec):
    """Apache Cassandra 2.1.0 run directly on Java 17 (``bin/cassandra`` only knows Java 7/8).

    No JMX port: 2.1.0 opens one only when com.sun.management.jmxremote.port is set, and it is not,
    so two stacks never clash on 7199.
    """

    name = "cassandra"
    services = ("cassandra",)
    port_names = ("native", "storage", "ssl_storage")
    stop_grace = 60.0

    def check_installed(self) -> None:
        """Java, and Cassandra itself: installed on first use (the script is idempotent), so plain
        ``pytest`` works on a clone where infra/bootstrap.sh has not run yet."""
        find_java()
        if (CASSANDRA_HOME / "conf" / "cassandra.json").is_file():
            return
        script = HERE / "install-cassandra.sh"
        result = subprocess.run([str(script)], capture_output=True, text=True, check=False)
        if result.returncode != 0 or not (CASSANDRA_HOME / "conf" / "cassandra.json").is_file():
            raise StackError(
                f"Cassandra 2.1.0 is not installed in {CASSANDRA_HOME} and {script} failed "
                f"(exit {result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}"
            )

    def prepare(self, home: Path, data_dir: Path, ports: Mapping[str, int]) -> LaunchPlan:
        java = find_java()
        conf = home / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        for sub in ("data", "commitlog", "saved_caches", "tmp"):
            (data_dir / sub).mkdir(parents=True, exist_ok=True)
        tmp_dir = data_dir / "tmp"
        settings = json.loads((CASSANDRA_HOME / "conf" / "cassandra.json").read_text())
        settings.update(
            {
                "cluster_name": "emporium-local",
                "listen_address": "127.0.0.1",
                "rpc_address": "127.0.0.1",
                "start_rpc": False,
                "native_transport_port": ports["native"],
                "storage_port": ports["storage"],
                "ssl_storage_port": ports["ssl_storage"],
                "seed_provider": [
                    {
                        "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                        "parameters": [{"seeds": "127.0.0.1"}],
                    }
                ],
                "data_file_directories": [str(data_dir / "data")],
                "commitlog_directory": str(data_dir / "commitlog"),
                "saved_caches_directory": str(data_dir / "saved_caches"),
                # Tests drop keyspaces all the time; a snapshot per drop only costs time and disk.
                "auto_snapshot": False,
                # One node: vnodes buy nothing, and 256 of them split every full scan 256 ways.
                "num_tokens": 1,
            }
        )
        # JSON is valid YAML, and Cassandra reads YAML.
        (conf / "cassandra.yaml").write_text(json.dumps(settings, indent=2))
        (conf / "logback.xml").write_text(_CASSANDRA_LOGBACK)
        lib = CASSANDRA_HOME / "lib"
        classpath = [str(conf), *sorted(str(jar) for jar in lib.glob("*.jar"))]
        add_opens = [f"--add-opens=java.base/{pkg}=ALL-UNNAMED" for pkg in _java_base_packages(java)]
        return LaunchPlan(
            [
                java,
                "-ea", f"-javaagent:{lib / 'jamm-0.2.6.jar'}",
                "-Xms512m", "-Xmx1g", "-Xss512k", "-XX:+UseG1GC",
                "-XX:+PerfDisableSharedMem",  # no /tmp/hsperfdata file left behind after a kill
                # Temp files (JNA unpacks its native library) stay in the stack dir, not in /tmp.
                f"-Djava.io.tmpdir={tmp_dir}", f"-Djna.tmpdir={tmp_dir}",
                "-Djava.net.preferIPv4Stack=true",
                *add_opens,
                f"-Dcassandra.config={(conf / 'cassandra.yaml').as_uri()}",
                f"-Dlogback.configurationFile={conf / 'logback.xml'}",
                f"-Dcassandra.logdir={home}",
                f"-Dcassandra.storagedir={data_dir}",
                "-Dcassandra-foreground=yes",
                # One node, nobody to gossip with: do not wait for gossip to settle.
                "-Dcassandra.skip_wait_for_gossip_to_settle=0",
                "-cp", os.pathsep.join(classpath),
                "org.apache.cassandra.service.CassandraDaemon",
            ],
            cwd=home,
        )  # fmt: skip

    def urls(self, ports: Mapping[str, int]) -> dict[str, str]:
        return {
            "cassandra": f"cassandra://127.0.0.1:{ports['native']}/{APP_DATABASE}"
            f"?protocol_version={CASSANDRA_PROTOCOL_VERSION}"
        }


SPECS: dict[str, ServerSpec] = {
    spec.name: spec for spec in (RedisSpec(), MariadbSpec(), NoidaSpec(), CassandraSpec())
}
SERVER_OF: dict[str, str] = {service: spec.name for spec in SPECS.values() for service in spec.services}
# Slowest first, so the long boots overlap with the short ones when several are started together.
_START_ORDER = ("cassandra", "noida", "mariadb", "redis")


def _start_rank(server: str) -> int:
    return _START_ORDER.index(server) if server in _START_ORDER else len(_START_ORDER)


# --------------------------------------------------------------------------------------------------


@dataclass
class _Pending:
    """A server being waited for. ``attempt`` 0 means it was already running before this call."""

    spec: ServerSpec
    record: ServerRecord
    process: subprocess.Popen[bytes] | None
    attempt: int
    deadline: float
    waiting: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.waiting = {service: "not probed yet" for service in self.spec.services}


class LocalStack:
    """Real servers on free loopback ports under ``base_dir``; see the module docstring."""

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
        self._lock = threading.RLock()
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._atexit_registered = False

    # ---- public API ------------------------------------------------------------------------------

    def ensure(self, service: str) -> str:
        """Start ``service`` unless this stack already runs it; return its URL once it answers."""
        return self.ensure_many([service])[service]

    def ensure_many(self, services: Iterable[str]) -> dict[str, str]:
        """Like ``ensure`` for several services; their servers boot in parallel."""
        wanted = list(dict.fromkeys(services))
        for service in wanted:
            if service not in SERVER_OF:
                raise ValueError(f"unknown service {service!r}; choose from {', '.join(SERVICES)}")
        servers = {SERVER_OF[s] for s in wanted}
        with self._locked() as state:
            pending: list[_Pending] = []
            try:
                for name in sorted(servers, key=_start_rank):
                    record = state.servers.get(name)
                    if record and _alive(record.pid, record.start_ticks):
                        deadline = time.monotonic() + self.start_timeout
                        child = self._children.get(name)
                        pending.append(_Pending(SPECS[name], record, child, attempt=0, deadline=deadline))
                        continue
                    previous_ports = None
                    if record:  # died since it was recorded: clear it away, start afresh
                        log.warning("%s (pid %s) is gone; starting a new one", name, record.pid)
                        self._discard(state, name)
                        previous_ports = record.ports  # clients hold its URL: keep it when the ports are free
                    pending.append(self._spawn(state, SPECS[name], attempt=1, ports=previous_ports))
                self._wait_all(state, pending)
            except BaseException:
                # A half-started stack is worse than none: stop what this call started.
                started = {item.spec.name for item in pending if item.attempt}
                with contextlib.suppress(StackError):
                    self._stop_records(state, [r for n, r in state.servers.items() if n in started])
                raise
        return {service: self._url(state, service) for service in wanted}

    def url(self, service: str) -> str | None:
        """The URL of ``service`` if this stack has started it (whether or not it answers now)."""
        state = self._load()
        record = state.servers.get(SERVER_OF[service])
        return record.urls[service] if record else None

    def status(self, *, check: bool = True, probe_timeout: float = 3.0) -> dict[str, dict[str, Any]]:
        """Per started service: server, pid, url, log file, whether the process runs and (``check``)
        whether it answers a real request now."""
        state = self._load()
        report: dict[str, dict[str, Any]] = {}
        for service in SERVICES:
            record = state.servers.get(SERVER_OF[service])
            if record is None:
                continue
            running = _alive(record.pid, record.start_ticks)
            answers: bool | None = False
            detail = "not running"
            if running and not check:
                answers, detail = None, "not checked"
            elif running:
                try:
                    detail, answers = probe(service, record.urls[service], probe_timeout), True
                except Exception as exc:
                    detail = f"{type(exc).__name__}: {exc}"
            report[service] = {
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
        return report

    def pids(self) -> dict[str, int]:
        """PID per started server (for callers that verify nothing is left behind)."""
        return {name: record.pid for name, record in self._load().servers.items()}

    def stop_all(self) -> None:
        """Stop every server of this stack by PID, verify each exited, delete their data dirs."""
        if not self.state_file.exists():
            return
        with self._locked() as state:
            self._stop_records(state, list(state.servers.values()))
        if self._atexit_registered:
            atexit.unregister(self._stop_at_exit)
            self._atexit_registered = False

    # ---- state ----------------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.base_dir / "state.json"

    def _load(self) -> StackState:
        try:
            return msgspec.json.decode(self.state_file.read_bytes(), type=StackState)
        except FileNotFoundError:
            return StackState()
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise StackError(f"{self.state_file} is unreadable ({exc}); stop its servers by hand") from exc

    def _save(self, state: StackState) -> None:
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_bytes(msgspec.json.format(msgspec.json.encode(state), indent=2))
        tmp.replace(self.state_file)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[StackState]:
        """Thread lock plus a file lock, so two ``emporium services`` commands never race."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        with self._lock, (self.base_dir / ".lock").open("w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield self._load()
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _url(self, state: StackState, service: str) -> str:
        return state.servers[SERVER_OF[service]].urls[service]

    # ---- start ----------------------------------------------------------------------------------

    def _spawn(
        self, state: StackState, spec: ServerSpec, attempt: int, ports: Mapping[str, int] | None = None
    ) -> _Pending:
        spec.check_installed()
        home = self.base_dir / spec.name
        data_dir = home / "data"
        log_file = home / f"{spec.name}.log"
        if data_dir.exists():
            shutil.rmtree(data_dir)
        data_dir.mkdir(parents=True)
        if ports is None or set(ports) != set(spec.port_names) or not _ports_free(ports.values()):
            ports = dict(zip(spec.port_names, _free_ports(len(spec.port_names)), strict=True))
        ports = dict(ports)
        started_at = time.time()  # before prepare: a cold start includes e.g. mariadb-install-db
        plan = spec.prepare(home, data_dir, ports)
        env = dict(os.environ if plan.env is None else plan.env)
        with log_file.open("ab") as log_fh:
            log_fh.write(f"\n=== {time.strftime('%F %T')} starting {spec.name}: {plan.command}\n".encode())
            log_fh.flush()
            process = subprocess.Popen(
                plan.command,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                cwd=plan.cwd or home,
                env=env,
                # Own session: a Ctrl-C in the terminal reaches pytest, which stops the servers in
                # order, rather than killing them mid-write; and the session id finds leftovers.
                start_new_session=True,
                preexec_fn=None if self.keep_running else _set_parent_death_signal,
            )
        info = _proc_info(process.pid)
        record = ServerRecord(
            server=spec.name,
            pid=process.pid,
            start_ticks=info.start_ticks if info else 0,
            ports=ports,
            urls=spec.urls(ports),
            base_dir=str(home),
            data_dir=str(data_dir),
            log_file=str(log_file),
            command=plan.command,
            started_at=started_at,
        )
        state.servers[spec.name] = record
        self._save(state)
        if not self.keep_running:
            self._children[spec.name] = process
            if not self._atexit_registered:
                atexit.register(self._stop_at_exit)
                self._atexit_registered = True
        log.info("started %s (pid %d) on ports %s", spec.name, process.pid, ports)
        return _Pending(spec, record, process, attempt, deadline=time.monotonic() + self.start_timeout)

    def _wait_all(self, state: StackState, pending: list[_Pending]) -> None:
        """Poll every pending server in turn until each answers a real request on every service.

        Polling them side by side (not one after another) makes each ``startup_seconds`` its own.
        A server that lost a race for its port is restarted on new ports (twice at most).
        """
        remaining = list(pending)
        while remaining:
            for item in list(remaining):
                try:
                    done = self._poll_once(item)
                except StackError as exc:
                    self._stop_records(state, [item.record])
                    lost_port = any(m in str(exc).lower() for m in _PORT_IN_USE_MARKERS)
                    if not (lost_port and 0 < item.attempt < 3):
                        raise
                    log.warning("%s lost a race for its port; retrying on other ports", item.spec.name)
                    retry = self._spawn(state, item.spec, attempt=item.attempt + 1)
                    remaining[remaining.index(item)] = retry
                    pending.append(retry)
                    continue
                if done:
                    remaining.remove(item)
                    if item.attempt:
                        item.record.startup_seconds = round(time.time() - item.record.started_at, 3)
                        self._save(state)
                        log.info("%s answers after %.2fs", item.spec.name, item.record.startup_seconds)
            if remaining:
                time.sleep(0.1)

    def _poll_once(self, item: _Pending) -> bool:
        """One round of probes for ``item``; True once all its services answered. Raises StackError
        when the process has exited or the start timeout has passed, with the log's tail."""
        record = item.record
        exited = item.process.poll() if item.process else None
        if exited is not None or not _alive(record.pid, record.start_ticks):
            if exited is None and item.process is not None:  # it died after poll(): collect its code
                with contextlib.suppress(subprocess.TimeoutExpired):
                    exited = item.process.wait(timeout=5)
            raise StackError(
                f"{record.server} exited (code {exited}) before answering; "
                f"log {record.log_file}:\n{_tail(Path(record.log_file))}"
            )
        for service in list(item.waiting):
            url = record.urls[service]
            port = urlsplit(url).port
            if port is not None:
                # Probe only once the port listens, and only if it is OUR server listening: after a
                # lost race for the port, another server may be answering there.
                listeners = _listening_inodes(port)
                if not listeners:
                    item.waiting[service] = f"port {port} not open yet"
                    continue
                ours = set().union(*(_socket_inodes(pid) for pid in [record.pid, *_session_members(record)]))
                if not listeners & ours:
                    raise StackError(
                        f"{record.server}: port {port} is already in use by another process; "
                        f"log {record.log_file}:\n{_tail(Path(record.log_file), lines=10)}"
                    )
            try:
                probe(service, url, timeout=min(5.0, max(0.5, item.deadline - time.monotonic())))
                del item.waiting[service]
            except Exception as exc:
                item.waiting[service] = f"{type(exc).__name__}: {exc}"
        if item.waiting and time.monotonic() > item.deadline:
            reasons = "; ".join(f"{s}: {why}" for s, why in item.waiting.items())
            raise StackError(
                f"{record.server} (pid {record.pid}) did not answer within {self.start_timeout:.0f}s "
                f"({reasons}); log {record.log_file}:\n{_tail(Path(record.log_file))}"
            )
        return not item.waiting

    # ---- stop -----------------------------------------------------------------------------------

    def _stop_records(self, state: StackState, records: Sequence[ServerRecord]) -> None:
        """SIGTERM all at once (they shut down in parallel), wait, SIGKILL stragglers, verify."""
        live = [r for r in records if _alive(r.pid, r.start_ticks)]
        for record in live:
            log.info("stopping %s (pid %d)", record.server, record.pid)
            _signal(record.pid, signal.SIGTERM)
        survivors: list[str] = []
        for record in live:
            grace = SPECS[record.server].stop_grace
            if not self._wait_exit(record, time.monotonic() + grace):
                log.warning(
                    "%s (pid %d) ignored SIGTERM for %.0fs: SIGKILL", record.server, record.pid, grace
                )
                _signal(record.pid, signal.SIGKILL)
                if not self._wait_exit(record, time.monotonic() + 15):
                    survivors.append(f"{record.server} (pid {record.pid})")
            # Anything the server forked lives in its session: make sure none of it outlives it.
            for pid in _session_members(record):
                _signal(pid, signal.SIGKILL)
        for record in records:
            if f"{record.server} (pid {record.pid})" in survivors:
                continue
            self._children.pop(record.server, None)
            state.servers.pop(record.server, None)
            # Logs stay for post-mortems; the data is throw-away.
            shutil.rmtree(record.data_dir, ignore_errors=True)
        self._save(state)
        if survivors:
            raise StackError(f"still running after SIGKILL: {', '.join(survivors)}")

    def _wait_exit(self, record: ServerRecord, deadline: float) -> bool:
        child = self._children.get(record.server)
        while time.monotonic() < deadline:
            if child is not None and child.pid == record.pid:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=0.1)  # reaps our own child so it does not linger as a zombie
            if not _alive(record.pid, record.start_ticks):
                return True
            time.sleep(0.05)
        return not _alive(record.pid, record.start_ticks)

    def _discard(self, state: StackState, name: str) -> None:
        record = state.servers.pop(name)
        self._children.pop(name, None)
        shutil.rmtree(record.data_dir, ignore_errors=True)
        self._save(state)

    def _stop_at_exit(self) -> None:
        try:
            self.stop_all()
        except Exception as exc:  # at exit there is nobody left to raise to
            print(f"emporium stack: stopping servers at exit failed: {exc}", file=sys.stderr)
