"""Run every benchmark in turn (what `make bench` does); each prints its medians and same-run baselines.

    python -m loadtest.bench [--only NAME ...] [--runs 3]

Benchmarks that need servers start their own throw-away ones through infra.local.stack; the results
belong in docs/BENCHMARKS.md together with the machine's load average, which this prints per step.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from infra.local.stack import LocalStack

BENCHMARKS: dict[str, list[str]] = {
    "eventlog": ["loadtest.bench_eventlog"],
    "ingest": ["loadtest.bench_ingest", "--kafka-url", "{kafka}"],
    "projector": ["loadtest.bench_projector"],
    "projection": ["loadtest.bench_projection", "--es-url", "{elasticsearch}", "--es-limit", "8000"],
    "search-engine": ["loadtest.bench_search_engine"],
    "search": ["loadtest.bench_search"],
    "search-nocache": ["loadtest.bench_search", "--no-cache"],
    "freshness": ["loadtest.bench_freshness"],
    "freshness-cluster": ["loadtest.bench_freshness", "--cluster"],
    "inventory": ["loadtest.bench_inventory"],
    "stock-feed": ["loadtest.bench_stock_feed"],
    "limits": ["loadtest.bench_limits"],
    "checkout": ["loadtest.bench_checkout"],
    "recommendations": ["loadtest.bench_recommendations", "--cassandra-url", "{cassandra}"],
    "edge": ["loadtest.bench_edge"],  # starts its own full stack and the edge topology
    "homepage": ["loadtest.bench_homepage"],
    "mysql-connect": ["loadtest.bench_mysql_connect", "--mysql-url", "{mariadb}"],
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median reported)")
    args = parser.parse_args()
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="emporium-bench-") as tmp:
        stack = LocalStack(Path(tmp))
        try:
            urls = {name: stack.ensure(name) for name in ("kafka", "elasticsearch", "cassandra", "mariadb")}
            for name in args.only or list(BENCHMARKS):
                if not _run(name, urls, args.runs):
                    failed.append(name)
        finally:
            stack.stop_all()
    if failed:
        raise SystemExit(f"benchmarks that failed: {', '.join(failed)}")


def _run(name: str, urls: dict[str, str], runs: int) -> bool:
    module, *extra = (part.format(**urls) for part in BENCHMARKS[name])
    print(f"\n=== {name}: python -m {module} {' '.join(extra)} --runs {runs}", flush=True)
    print(f"    load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    started = time.perf_counter()
    code = subprocess.call([sys.executable, "-m", module, *extra, "--runs", str(runs)])
    print(f"=== {name}: exit {code} after {time.perf_counter() - started:.0f}s", flush=True)
    return code == 0


if __name__ == "__main__":
    main()
