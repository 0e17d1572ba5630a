"""The edge topology on one machine, as production runs it: Nginx in front of N API worker processes
(``emporium serve``, projectors out of process) and one ``emporium project`` process, optionally
Prometheus scraping them all, against the cluster adapters' servers. ``emporium services up edge``
starts it; ``down`` stops it.

One supervisor process (``infra.local.edge_supervisor``) owns the children and restarts any that dies.
Files live in ``<stack dir>/edge``: ``edge.json`` (ports, supervisor PID), ``children.json`` (the
children's PIDs, rewritten at each restart), ``nginx.conf``, ``prometheus.yml``, ``logs/``, ``data/``.
Nginx includes ``infra/deploy/nginx/emporium-edge.conf``, the same rules as the deployment files.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import msgspec
import psutil

from infra.deploy.tools import DEPLOY, ToolMissing, tool
from infra.local.edge_supervisor import ChildSpec, ChildState, EdgePlan
from infra.local.ports import free_ports
from infra.local.services import StackError
from infra.local.supervisor import log_tail

EDGE_CONF = DEPLOY / "nginx" / "emporium-edge.conf"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
READY_TIMEOUT_S = float(os.environ.get("EMPORIUM_EDGE_START_TIMEOUT", "180"))


class EdgeState(msgspec.Struct, kw_only=True):
    supervisor_pid: int
    supervisor_create_time: float
    url: str
    worker_ports: list[int]
    projector_port: int
    prometheus_url: str | None
    admin_token_file: str


def nginx_conf(home: Path, port: int, worker_ports: list[int]) -> str:
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=2 fail_timeout=5s;" for p in worker_ports)
    temp = home / "nginx-temp"
    return f"""# Written by `emporium services up edge` (infra/local/edge.py).
worker_processes 1;
pid {home}/nginx.pid;
error_log {home}/logs/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    upstream emporium_api {{
{servers}
        keepalive 32;
        keepalive_timeout 4s;  # below the workers' keep-alive (5 s): see infra/deploy/nginx/nginx.conf
    }}
    server {{
        listen 127.0.0.1:{port};
        include {EDGE_CONF};
    }}
}}
"""


def prometheus_yml(worker_ports: list[int], projector_port: int) -> str:
    workers = ", ".join(f'"127.0.0.1:{p}"' for p in worker_ports)
    return f"""# Written by `emporium services up edge` (infra/local/edge.py).
global: {{scrape_interval: 5s, evaluation_interval: 5s}}
rule_files: ["{ALERTS}"]
scrape_configs:
  - job_name: emporium-api
    static_configs: [{{targets: [{workers}]}}]
  - job_name: emporium-projector
    static_configs: [{{targets: ["127.0.0.1:{projector_port}"]}}]
"""


class EdgeTopology:
    def __init__(self, stack_dir: Path) -> None:
        self.home = Path(stack_dir).resolve() / "edge"
        self.state_file = self.home / "edge.json"
        self.children_file = self.home / "children.json"

    # ---- up ---------------------------------------------------------------------------------------

    def up(
        self,
        urls: Mapping[str, str],
        *,
        workers: int = 2,
        prometheus: bool = True,
        env: Mapping[str, str] = {},
    ) -> EdgeState:
        """Start the topology over the servers ``urls`` names (EMPORIUM_*_URL -> URL) and return once every
        process answers; raises StackError (after stopping what it started) otherwise."""
        if (state := self.state()) is not None:
            return state
        try:
            nginx = tool("nginx")
            promtool_bin = tool("prometheus") if prometheus else None
        except ToolMissing as exc:
            raise StackError(str(exc)) from exc
        shutil.rmtree(self.home, ignore_errors=True)
        for sub in ("logs", "data", "nginx-temp"):
            (self.home / sub).mkdir(parents=True)
        (self.home / "nginx-temp").chmod(0o1777)  # Nginx's workers run as nobody when started as root
        http_port, projector_port, prom_port, *worker_ports = free_ports(3 + workers)
        child_env = self._env(urls, env or {})
        children = [self._nginx(nginx, http_port, worker_ports)]
        emporium = str(Path(sys.executable).parent / "emporium")
        for i, port in enumerate(worker_ports):
            command = [emporium, "serve", "--host", "127.0.0.1", "--port", str(port)]
            children.append(self._child(f"worker-{i}", command, child_env))
        command = [emporium, "project", "--metrics-port", str(projector_port)]
        children.append(self._child("projector", command, child_env))
        if promtool_bin is not None:
            children.append(self._prometheus(promtool_bin, prom_port, worker_ports, projector_port))
        plan = EdgePlan(children=children, state_file=str(self.children_file))
        (self.home / "plan.json").write_bytes(msgspec.json.encode(plan))
        supervisor = self._start_supervisor()
        state = EdgeState(
            supervisor_pid=supervisor.pid,
            supervisor_create_time=supervisor.create_time(),
            url=f"http://127.0.0.1:{http_port}",
            worker_ports=worker_ports,
            projector_port=projector_port,
            prometheus_url=f"http://127.0.0.1:{prom_port}" if promtool_bin else None,
            admin_token_file=str(self.home / "admin-token"),
        )
        self.state_file.write_bytes(msgspec.json.encode(state))
        try:
            self._await_ready(state)
        except BaseException:
            self.down()
            raise
        return state

    def _env(self, urls: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
        env = {**os.environ, **urls, **extra}
        for name, var in (("admin-token", "EMPORIUM_ADMIN_TOKEN"), ("key-secret", "EMPORIUM_KEY_SECRET")):
            value = env.get(var) or secrets.token_urlsafe(24)  # every worker must share the key secret
            (self.home / name).write_text(value)
            (self.home / name).chmod(0o600)
            env[var] = value
        env.setdefault("EMPORIUM_TRUSTED_PROXIES", "127.0.0.1")  # X-Forwarded-For from Nginx
        env.update(EMPORIUM_INPROCESS_PROJECTORS="false", EMPORIUM_DATA_DIR=str(self.home / "data"))
        return env

    def _child(
        self, name: str, command: list[str], env: dict[str, str], stop: int = signal.SIGTERM
    ) -> ChildSpec:
        log_file = str(self.home / "logs" / f"{name}.log")
        return ChildSpec(name=name, command=command, env=env, log_file=log_file, stop_signal=int(stop))

    def _nginx(self, nginx: str, port: int, worker_ports: list[int]) -> ChildSpec:
        conf = self.home / "nginx.conf"
        conf.write_text(nginx_conf(self.home, port, worker_ports))
        error_log = str(self.home / "logs" / "nginx-error.log")
        checked = subprocess.run(
            [nginx, "-t", "-q", "-p", str(self.home), "-c", str(conf), "-e", error_log],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if checked.returncode != 0:
            raise StackError(f"nginx -t refused {conf}:\n{checked.stderr}")
        command = [nginx, "-p", str(self.home), "-c", str(conf), "-e", error_log, "-g", "daemon off;"]
        return self._child("nginx", command, dict(os.environ), stop=signal.SIGQUIT)  # SIGQUIT: graceful

    def _prometheus(self, binary: str, port: int, worker_ports: list[int], projector_port: int) -> ChildSpec:
        config = self.home / "prometheus.yml"
        config.write_text(prometheus_yml(worker_ports, projector_port))
        command = [
            binary, f"--config.file={config}", f"--storage.tsdb.path={self.home / 'data' / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1d",
        ]  # fmt: skip
        return self._child("prometheus", command, dict(os.environ))

    def _start_supervisor(self) -> psutil.Popen:
        with (self.home / "logs" / "supervisor.log").open("ab") as out:
            return psutil.Popen(
                [sys.executable, "-m", "infra.local.edge_supervisor", str(self.home / "plan.json")],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip

    def endpoints(self, state: EdgeState) -> dict[str, str]:
        """What answers when the topology is up: name -> URL."""
        found = {f"worker-{i}": f"http://127.0.0.1:{p}/readyz" for i, p in enumerate(state.worker_ports)}
        found["projector"] = f"http://127.0.0.1:{state.projector_port}/readyz"
        found["nginx"] = f"{state.url}/healthz"
        if state.prometheus_url:
            found["prometheus"] = f"{state.prometheus_url}/-/ready"
        return found

    def _await_ready(self, state: EdgeState) -> None:
        waiting = self.endpoints(state)
        last: dict[str, str] = {}  # each endpoint's last answer, for the error
        deadline = time.monotonic() + READY_TIMEOUT_S
        with httpx.Client(timeout=3) as client:
            while waiting:
                if not self._supervisor_running(state):
                    raise StackError(f"edge supervisor exited:\n{self._tails(['supervisor'])}")
                for name, url in list(waiting.items()):
                    try:
                        answer = client.get(url)
                    except httpx.HTTPError as exc:
                        last[name] = repr(exc)
                        continue
                    if answer.status_code == 200:
                        del waiting[name]
                    last[name] = f"{answer.status_code} {answer.text[:300]}"
                if waiting and time.monotonic() > deadline:
                    late = "; ".join(f"{name}: {last.get(name)}" for name in waiting)
                    tails = self._tails(waiting)
                    raise StackError(f"edge: not ready in {READY_TIMEOUT_S:.0f}s ({late}):\n{tails}")
                time.sleep(0.3)

    def _tails(self, names: list[str] | Mapping[str, str]) -> str:
        return "\n".join(f"--- {n}:\n{log_tail(self.home / 'logs' / f'{n}.log', lines=15)}" for n in names)

    # ---- state, down ------------------------------------------------------------------------------

    def state(self) -> EdgeState | None:
        """The running topology's state (None when it is not running)."""
        try:
            state = msgspec.json.decode(self.state_file.read_bytes(), type=EdgeState)
        except FileNotFoundError:
            return None
        return state if self._supervisor_running(state) else None

    def children(self) -> list[ChildState]:
        try:
            return msgspec.json.decode(self.children_file.read_bytes(), type=list[ChildState])
        except FileNotFoundError:
            return []

    @staticmethod
    def _supervisor_running(state: EdgeState) -> bool:
        """By PID and command line: start times are no help on a VM whose clock jumps (snapshots)."""
        try:
            process = psutil.Process(state.supervisor_pid)
            ours = "infra.local.edge_supervisor" in process.cmdline()
            return ours and process.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
        except psutil.Error:
            return False

    def down(self, timeout: float = 40.0) -> None:
        """SIGTERM the supervisor (it stops its children), then kill whatever is left by PID."""
        try:
            state = msgspec.json.decode(self.state_file.read_bytes(), type=EdgeState)
        except FileNotFoundError:
            return
        if self._supervisor_running(state):
            supervisor = psutil.Process(state.supervisor_pid)
            supervisor.terminate()
            try:
                supervisor.wait(timeout)
            except psutil.TimeoutExpired:
                supervisor.kill()
        for child in self.children():  # a supervisor killed -9 leaves its children behind
            try:
                if os.getsid(child.pid) == state.supervisor_pid:  # the supervisor leads their session
                    psutil.Process(child.pid).kill()
            except (OSError, psutil.Error):
                pass
        self.state_file.unlink(missing_ok=True)
