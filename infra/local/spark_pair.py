"""A Spark standalone master and one worker, from the installed pyspark, as one foreground process.

The local stack runs each server as one process it stops by PID; Spark's standalone cluster is two
JVMs. This launcher starts both (``bin/spark-class ...Master`` then ``...Worker``; no download), ends
both on SIGTERM, and exits as soon as either dies, so the stack sees one server that lives and dies
whole. Run by ``infra.local.servers.spark``::

    python -m infra.local.spark_pair --port P --ui-port U --worker-ui-port W --work-dir DIR
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"spark master did not listen on {port}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ui-port", type=int, required=True)
    parser.add_argument("--worker-ui-port", type=int, required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--cores", default="2")
    parser.add_argument("--memory", default="2g")
    args = parser.parse_args(argv)
    home = spark_home()
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
    }
    env["SPARK_LOG_DIR"] = env["SPARK_WORKER_DIR"] = args.work_dir
    spark_class = str(home / "bin" / "spark-class")
    master = subprocess.Popen(
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
         "--port", str(args.port), "--webui-port", str(args.ui_port)],
        env=env,
    )  # fmt: skip
    children = [master]

    def stop(signum: int, frame: FrameType | None) -> None:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _wait_port(args.port, master)
    worker = subprocess.Popen(
        [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
         "--webui-port", str(args.worker_ui_port), "--cores", args.cores, "--memory", args.memory,
         "--work-dir", args.work_dir, f"spark://127.0.0.1:{args.port}"],
        env=env,
    )  # fmt: skip
    children.append(worker)
    while all(child.poll() is None for child in children):
        time.sleep(0.5)
    stop(signal.SIGTERM, None)
    return 1


if __name__ == "__main__":
    sys.exit(main())
