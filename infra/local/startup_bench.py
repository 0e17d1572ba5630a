"""Cold start and stop time of each local-stack server: ``python -m infra.local.startup_bench [-n 3]``.

Cold = a new LocalStack with an empty data dir, from spawn (MariaDB: from mariadb-install-db) until the
server answers its real readiness request. Each server is measured alone, ``-n`` times; the median is
printed with min and max, and next to the same-run floor: Redis, the smallest server, started the same
way (so the ratio says how much slower than a trivial server each one is on this machine today).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from infra.local.stack import LocalStack

SERVERS = {"redis": "redis", "mariadb": "mariadb", "noida": "kafka", "cassandra": "cassandra"}


def measure(service: str, runs: int) -> tuple[list[float], list[float]]:
    starts, stops = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="emporium-bench-") as tmp:
            stack = LocalStack(Path(tmp))
            began = time.perf_counter()
            try:
                stack.ensure(service)
                starts.append(time.perf_counter() - began)
            finally:
                began = time.perf_counter()
                stack.stop_all()
                stops.append(time.perf_counter() - began)
    return starts, stops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--runs", type=int, default=3)
    parser.add_argument("servers", nargs="*", default=list(SERVERS))
    args = parser.parse_args()
    results = {name: measure(SERVERS[name], args.runs) for name in ["redis", *args.servers]}
    floor = statistics.median(results["redis"][0])
    print(f"{'server':10} {'start median':>12} {'min':>6} {'max':>6} {'x redis':>8} {'stop median':>12}")
    for name in args.servers:
        starts, stops = results[name]
        median = statistics.median(starts)
        print(
            f"{name:10} {median:11.2f}s {min(starts):5.2f}s {max(starts):5.2f}s "
            f"{median / floor:7.1f}x {statistics.median(stops):11.2f}s"
        )
    print(f"(floor: redis median {floor:.2f}s in this run; {args.runs} runs each)")


if __name__ == "__main__":
    main()
