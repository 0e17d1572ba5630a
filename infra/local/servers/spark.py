"""A Spark standalone cluster (master + one worker) from the installed pyspark, through
``infra.local.spark_pair``. Ready once the master's web UI lists an alive worker."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from infra.local.servers.base import LaunchPlan, ServerSpec, require
from infra.local.services import StackError

ROOT = Path(__file__).resolve().parents[3]


class SparkSpec(ServerSpec):
    name = "spark"
    services = ("spark",)
    port_names = ("spark", "spark_ui", "worker_ui")
    stop_grace = 30.0

    def check_installed(self) -> None:
        require("java", "install a JRE: apt-get install openjdk-17-jre-headless")
        try:
            import pyspark  # noqa: F401
        except ImportError as exc:
            raise StackError("pyspark is not installed (a base dependency of Emporium)") from exc

    def prepare(self, home: Path, data_dir: Path, ports: Mapping[str, int]) -> LaunchPlan:
        import os

        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
        }
        return LaunchPlan(
            [
                sys.executable, "-m", "infra.local.spark_pair",
                "--port", str(ports["spark"]),
                "--ui-port", str(ports["spark_ui"]),
                "--worker-ui-port", str(ports["worker_ui"]),
                "--work-dir", str(data_dir),
            ],
            env=env,
            cwd=home,
        )  # fmt: skip

    def urls(self, ports: Mapping[str, int]) -> dict[str, str]:
        return {
            "spark": f"spark://127.0.0.1:{ports['spark']}",
            "spark-ui": f"http://127.0.0.1:{ports['spark_ui']}",
        }

    def probe_url(self, service: str, urls: Mapping[str, str]) -> str:
        """The master's web UI: it says whether a worker has registered, the RPC port does not."""
        return urls["spark-ui"]
