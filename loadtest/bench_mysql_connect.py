"""Benchmark: what a new MySQL connection costs per ``ssl_mode``, in the same run.

    python -m loadtest.bench_mysql_connect [--mysql-url mysql://root@127.0.0.1:3306/test] [--connects 40]
                                           [--runs 5] [--strict]

Opens and closes ``--connects`` connections per mode, alternating the modes run by run, and prints the
median wall time and CPU (this process) per connection. ``disabled`` is the baseline. ``preferred``
(the default) lets PyMySQL build a TLS context on every connect, which loads the system CA store,
even against a server that offers no TLS. The strict modes reuse one context per process; they are
timed only against a server that offers TLS (``--strict``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import pymysql

from kernel.database import MysqlTarget, parse_database_url


def connect_cost(url: str, mode: str, connects: int) -> tuple[float, float]:
    """(wall ms, CPU ms) per connect-and-close."""
    target = parse_database_url(f"{url.split('?')[0]}?ssl_mode={mode}")
    assert isinstance(target, MysqlTarget), url
    kwargs = target.pymysql_kwargs()
    kwargs.pop("database")
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(connects):
        pymysql.connect(**kwargs, connect_timeout=5).close()
    return (time.perf_counter() - wall) * 1000 / connects, (time.process_time() - cpu) * 1000 / connects


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mysql-url", default="mysql://root@127.0.0.1:3306/test")
    parser.add_argument("--connects", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--strict", action="store_true", help="also time ssl_mode=required (server with TLS)")
    args = parser.parse_args()
    modes = ["disabled", "preferred"] + (["required"] if args.strict else [])
    results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    for run in range(args.runs):
        for mode in modes if run % 2 == 0 else reversed(modes):
            wall, cpu = connect_cost(args.mysql_url, mode, args.connects)
            results[mode].append((wall, cpu))
            print(f"run {run + 1}: {mode:<10} {wall:7.2f} ms/connect  CPU {cpu:7.2f} ms", flush=True)
    base = statistics.median(w for w, _ in results["disabled"])
    print(f"\n{args.connects} connects per run, {args.runs} runs, medians:")
    for mode, values in results.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        print(
            f"  ssl_mode={mode:<10} {wall:7.2f} ms/connect  CPU {cpu:7.2f} ms  ({wall / base:.2f}x disabled)"
        )


if __name__ == "__main__":
    main()
