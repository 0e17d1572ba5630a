"""POST /v1/reservations over HTTP against GET /healthz on the same server, driven by wrk.

    python -m loadtest.bench_reservations_http [--runs 3] [--seconds 10] [--connections 200] [--threads 1]
                                               [--no-pin]

Servers: EMPORIUM_CACHE_URL=redis://... and EMPORIUM_DATABASE_URL=mysql://... when set, otherwise a
private Redis + MariaDB (loadtest.inventory_stack.servers). The API is `emporium serve` (one uvicorn
worker, cluster engine: every 201 is durable in MySQL first). The load tool is wrk (Debian package
`wrk`; `make bench` installs it): a compiled client, so that the driver does not eat the cores the
server is measured on. Each run measures /healthz and then reservations with the same connections,
threads and duration (loadtest/wrk_reservations.lua: unique Idempotency-Key and customer per request,
the key of a storefront the bench registers),
on a fresh SKU with enough stock that nearly every request is a real reservation (201, not a cheap 409).
After each run the stock is read back: oversell (held + sold above on-hand) must be 0, held + sold must
equal the 201s wrk saw plus at most one in-flight request per connection (wrk stops mid-request), and
the MySQL ledger must agree with the counters.

Placement: production runs the API server on its own cores and Redis/MySQL on other hosts. On this
2-core machine the bench gives the API server one core and the private Redis, MariaDB and wrk the
other (``loadtest.children.core_split``), for /healthz and reservations alike; ``--no-pin`` lets the
scheduler place everything (a woken Redis or MariaDB may then run on the server's core mid-request).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from loadtest.bench_search import free_port
from loadtest.children import cpu_seconds, spawn_emporium
from loadtest.inventory_audit import audit_mysql, drop_mysql_database, mysql_url_with_database
from loadtest.inventory_stack import servers

WRK_SCRIPT = Path(__file__).with_name("wrk_reservations.lua")
UNITS = 5_000_000  # on-hand per run: far more than a run can sell, so 201 is the common answer
UNLIMITED = "1000000000/second"


def storefront_key(base: str, token: str) -> str:
    """Register a storefront (admin) and return its key: reservations need one."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=base, timeout=30) as client:
        created = client.post(
            "/v1/storefronts", json={"storefront_id": name}, headers={"Authorization": f"Bearer {token}"}
        )
        created.raise_for_status()
        return str(created.json()["api_key"])


def wrk_executable() -> str:
    exe = shutil.which("wrk")
    if exe is None:
        raise SystemExit(
            "wrk not found: install the Debian package (`apt-get install wrk`) or run `make bench`, "
            "which installs it"
        )
    return exe


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    server_cpu_us: float  # server process CPU per request: steadier than rps on a shared machine


def run_wrk_command(
    cmd: list[str], *, seconds: float, server_pid: int | None = None, cpus: set[int] | None = None
) -> WrkResult:
    """Run one wrk command of ``seconds`` with WRK_SCRIPT (on ``cpus`` if given) and parse the WRK_RESULT
    line the script prints; with ``server_pid``, also the server's CPU time per request (else NaN)."""
    cpu_before = cpu_seconds(server_pid) if server_pid is not None else 0.0
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    ).stdout
    cpu = cpu_seconds(server_pid) - cpu_before if server_pid is not None else float("nan")
    line = next((ln for ln in out.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no WRK_RESULT line:\n{out}")
    data = json.loads(line.removeprefix("WRK_RESULT "))
    return WrkResult(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        statuses={int(k): v for k, v in sorted(data["statuses"].items())},
        socket_errors={k: v for k, v in data["errors"].items() if v},
        server_cpu_us=cpu / max(1, data["requests"]) * 1e6,
    )


def run_wrk(
    base: str,
    mode: str,
    *,
    seconds: float,
    connections: int,
    threads: int,
    server_pid: int,
    sku: str = "",
    tag: str = "",
    key: str = "",
    cpus: set[int] | None = None,
) -> WrkResult:
    """One wrk run (``mode`` healthz or reserve), on ``cpus`` if given; parses its WRK_RESULT line."""
    url = base + ("/v1/reservations" if mode == "reserve" else "/healthz")
    cmd = [
        wrk_executable(), "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
        "--timeout", "10s", "--latency", "-s", str(WRK_SCRIPT), url, "--", mode, sku, tag, key,
    ]  # fmt: skip
    return run_wrk_command(cmd, seconds=seconds, server_pid=server_pid, cpus=cpus)


@contextlib.contextmanager
def api_server(
    redis_url: str,
    mysql_url: str,
    token: str,
    loop: str | None = None,
    cpus: set[int] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[tuple[str, str, int]]:
    """`emporium serve` on a free port with a throw-away database; yields (base URL, db URL, pid).

    The storefront rate limit is lifted (the bench is one storefront selling as fast as it can; the
    limiter still counts every request); ``extra_env`` adds or overrides settings."""
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="bench-http-"))
    db_url = mysql_url_with_database(mysql_url, f"bench_http_{uuid.uuid4().hex[:8]}")
    env = {
        **os.environ,
        "EMPORIUM_DATA_DIR": str(data),
        "EMPORIUM_EVENT_LOG_URL": f"sqlite:///{data}/events.db",
        "EMPORIUM_DATABASE_URL": db_url,
        "EMPORIUM_CACHE_URL": redis_url,
        "EMPORIUM_ADMIN_TOKEN": token,
        "EMPORIUM_LOG_LEVEL": "warning",
        "EMPORIUM_RATE_LIMIT_STOREFRONT": UNLIMITED,
        **(extra_env or {}),
    }
    log = (data / "server.log").open("wb")
    serve = ["serve", "--port", str(port), *(["--loop", loop] if loop else [])]
    proc = spawn_emporium(serve, env=env, stdout=log, stderr=subprocess.STDOUT, new_session=True, cpus=cpus)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {(data / 'server.log').read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready: {(data / 'server.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield base, db_url, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        drop_mysql_database(db_url)
        shutil.rmtree(data, ignore_errors=True)


def http_round(
    base: str,
    db_url: str,
    token: str,
    *,
    server_pid: int,
    seconds: float,
    connections: int,
    threads: int,
    run: int,
    key: str,
    load_cpus: set[int] | None = None,
) -> dict[str, Any]:
    """Warm up, then /healthz and reservations for ``seconds`` each (as the storefront of ``key``);
    verify the stock afterwards."""
    sku, tag = f"bench:HTTP{run}", uuid.uuid4().hex[:8]  # supplier-scoped, as stock keys are
    admin = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, timeout=30) as client:
        client.put(f"/v1/stock/{sku}", json={"on_hand": UNITS}, headers=admin).raise_for_status()

    def wrk(mode: str, seconds: float, tag: str = "") -> WrkResult:
        return run_wrk(
            base,
            mode,
            seconds=seconds,
            connections=connections,
            threads=threads,
            server_pid=server_pid,
            sku=sku,
            tag=tag,
            key=key,
            cpus=load_cpus,
        )

    warm = min(2.0, seconds)  # fills pools and caches; not measured
    wrk("healthz", warm)
    warm_res = wrk("reserve", warm, f"w{tag}")
    health = wrk("healthz", seconds)
    res = wrk("reserve", seconds, tag)
    time.sleep(0.5)  # let requests cut off by wrk's stop finish before the stock is read
    with httpx.Client(base_url=base, timeout=30) as client:
        stock = client.get(f"/v1/stock/{sku}").json()
    audit = audit_mysql(db_url, sku)
    acknowledged = warm_res.statuses.get(201, 0) + res.statuses.get(201, 0)
    taken = stock["held"] + stock["sold"]
    return {
        "load": os.getloadavg()[0],
        "healthz": health,
        "reserve": res,
        "acknowledged": acknowledged,
        "taken": taken,
        "on_hand": stock["on_hand"],
        "cut_off": taken - acknowledged,
        "oversell": max(0, taken - stock["on_hand"]),
        "consistent": bool(audit.consistent) and audit.held == stock["held"],
        "ok": 0 <= taken - acknowledged <= 2 * connections and taken <= stock["on_hand"],
    }


def line(r: dict[str, Any]) -> str:
    h: WrkResult = r["healthz"]
    s: WrkResult = r["reserve"]
    share = {code: f"{n / max(1, sum(s.statuses.values())):.1%}" for code, n in s.statuses.items()}
    return (
        f"ratio {s.rps / h.rps:.0%} | /healthz {h.rps:,.0f} rps p50 {h.p50_ms:.1f} p99 {h.p99_ms:.1f} ms"
        f" cpu {h.server_cpu_us:.0f} us/req | POST /v1/reservations {s.rps:,.0f} rps p50 {s.p50_ms:.1f}"
        f" p99 {s.p99_ms:.1f} ms cpu {s.server_cpu_us:.0f} us/req"
        f" statuses {share}{' socket errors ' + str(s.socket_errors) if s.socket_errors else ''}"
        f" | stock: 201s {r['acknowledged']:,} held+sold {r['taken']:,} (cut off by wrk {r['cut_off']})"
        f" on-hand {r['on_hand']:,} oversell {r['oversell']} ledger {'ok' if r['consistent'] else 'MISMATCH'}"
        f" | load {r['load']:.1f}"
    )


def run(
    redis_url: str,
    mysql_url: str,
    *,
    runs: int,
    seconds: float,
    connections: int,
    threads: int,
    loop: str | None = None,
    split: tuple[set[int], set[int]] | None = None,
) -> list[dict[str, Any]]:
    """The HTTP bench: ``runs`` rounds against one server; prints each run and the medians.

    ``split`` = (the server's cores, wrk's cores): see ``loadtest.children.core_split``."""
    wrk_executable()
    token = uuid.uuid4().hex
    rounds: list[dict[str, Any]] = []
    server_cpus, load_cpus = split if split else (None, None)
    if split:
        print(f"# API server on cores {sorted(server_cpus or ())}, wrk on {sorted(load_cpus or ())}")
    with api_server(redis_url, mysql_url, token, loop, server_cpus) as (base, db_url, pid):
        key = storefront_key(base, token)
        for n in range(runs):
            result = http_round(
                base,
                db_url,
                token,
                server_pid=pid,
                seconds=seconds,
                connections=connections,
                threads=threads,
                run=n,
                key=key,
                load_cpus=load_cpus,
            )
            rounds.append(result)
            print(f"run {n + 1}: {line(result)}", flush=True)
    h = statistics.median(r["healthz"].rps for r in rounds)
    rr = statistics.median(r["reserve"].rps for r in rounds)
    ratio = statistics.median(r["reserve"].rps / r["healthz"].rps for r in rounds)
    print(
        f"HTTP POST /v1/reservations, wrk -t{threads} -c{connections} -d{seconds:g}s, median of {runs}:"
        f" {rr:,.0f} rps, p50 {statistics.median(r['reserve'].p50_ms for r in rounds):.1f} ms,"
        f" p99 {statistics.median(r['reserve'].p99_ms for r in rounds):.1f} ms (target <= 50 ms)\n"
        f"  baseline GET /healthz same server: {h:,.0f} rps,"
        f" p99 {statistics.median(r['healthz'].p99_ms for r in rounds):.1f} ms"
        f" -> median of per-run ratios {ratio:.0%} (target >= 50%)\n"
        f"  server CPU per request (median): /healthz"
        f" {statistics.median(r['healthz'].server_cpu_us for r in rounds):.0f} us, reservation"
        f" {statistics.median(r['reserve'].server_cpu_us for r in rounds):.0f} us\n"
        f"  oversell in every run: {[r['oversell'] for r in rounds]} (must be 0); stock checks"
        f" {'ok' if all(r['ok'] and r['consistent'] for r in rounds) else 'FAILED'}",
        flush=True,
    )
    if not all(r["ok"] and r["consistent"] and r["oversell"] == 0 for r in rounds):
        raise SystemExit("stock check failed: see the runs above")
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="per endpoint per run")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (same for both endpoints)")
    parser.add_argument(
        "--loop", choices=["asyncio", "uvloop"], help="emporium serve --loop (default: serve's)"
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="let the scheduler place everything (default: the API server on one core; the private"
        " Redis, MariaDB and wrk on the others, as if on other hosts)",
    )
    args = parser.parse_args()
    with servers() as stack:
        split = None if args.no_pin else stack.split_cores()
        run(
            stack.redis_url,
            stack.mysql_url,
            runs=args.runs,
            seconds=args.seconds,
            connections=args.connections,
            threads=args.threads,
            loop=args.loop,
            split=split,
        )


if __name__ == "__main__":
    main()
