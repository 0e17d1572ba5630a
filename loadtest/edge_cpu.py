"""Where the 2 cores go during a cached search through Nginx, with 1 and with 2 API workers: the CPU of
every process group (workers, projector, noida-db, Nginx, Redis, wrk) over one wrk run, and the workers'
CPU per request (BENCHMARKS.md, issue 17, explains the 2-worker scaling with it).

    python -m loadtest.edge_cpu [--seconds 8] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from infra.local.edge import EdgeTopology
from infra.local.stack import SERVICE_ENV, SERVICES, LocalStack
from loadtest import bench_edge

TICKS = os.sysconf("SC_CLK_TCK")
GROUPS = (  # a command line holding the first string belongs to the group named second
    ("wrk", "wrk"),
    ("nginx", "nginx"),
    ("emporium serve", "api workers"),
    ("emporium project", "projector"),
    ("noida-db", "noida-db"),
    ("redis-server", "redis"),
    ("mariadbd", "mariadb"),
    ("cassandra", "cassandra"),
    ("edge_supervisor", "supervisor"),
)


def processes() -> dict[int, tuple[float, str]]:
    """pid -> (CPU seconds so far, command line) of every process."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        found[int(pid)] = ((int(fields[11]) + int(fields[12])) / TICKS, command)
    return found


def group_of(command: str) -> str:
    return next((name for key, name in GROUPS if key in command), "other")


def children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system  # wrk's, once it has exited


def measure(workers: int, seconds: float, connections: int) -> None:
    with tempfile.TemporaryDirectory(prefix="emporium-edge-cpu-") as tmp:
        stack = LocalStack(Path(tmp) / "stack")
        try:
            urls = stack.ensure_many(SERVICES)
            edge = EdgeTopology(Path(tmp))
            state = edge.up({SERVICE_ENV[s][0]: urls[s] for s in SERVICES}, workers=workers, prometheus=False)
            try:
                bench_edge.seed(state.url, 2000)
                url = f"{state.url}{bench_edge.SEARCH}"
                bench_edge.wrk(url, "healthz", seconds=2, connections=connections)  # warms the caches
                before, started, wrk_before = processes(), time.monotonic(), children_cpu()
                result = bench_edge.wrk(url, "healthz", seconds=seconds, connections=connections)
                after, elapsed = processes(), time.monotonic() - started
                used: dict[str, float] = defaultdict(float)
                for pid, (cpu, command) in after.items():
                    used[group_of(command)] += cpu - before.get(pid, (0.0, command))[0]
                used["wrk"] = children_cpu() - wrk_before
            finally:
                edge.down()
        finally:
            stack.stop_all()
    shares = ", ".join(f"{k} {v / elapsed:.2f}" for k, v in sorted(used.items(), key=lambda kv: -kv[1]))
    requests = result.rps * elapsed
    print(f"{workers} worker(s): {result.rps:.0f} req/s, p50 {result.p50_ms:.1f} ms; cores: {shares}")
    print(
        f"  total {sum(used.values()) / elapsed:.2f} cores; API CPU per request "
        f"{used['api workers'] / requests * 1e6:.0f} us, Nginx {used['nginx'] / requests * 1e6:.0f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    os.environ.update(EMPORIUM_ADMIN_TOKEN=bench_edge.TOKEN, EMPORIUM_RATE_LIMITS="false")
    for workers in (1, 2):
        measure(workers, args.seconds, args.connections)


if __name__ == "__main__":
    main()
