"""noida-db: one binary emulating Kafka and Elasticsearch. It must be stopped with SIGTERM (a SIGKILL
loses recent writes), which the stack's stop path does."""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path

from infra.local.servers.base import LaunchPlan, ServerSpec
from infra.local.services import StackError

EMPTY_FETCH_WAIT_MS = 50  # an idle consumer then fetches ~20 times a second instead of ~5,000


def noida_binary() -> Path:
    """The noida-db executable itself, not its Python wrapper: the wrapper does not forward SIGTERM,
    so stopping it by PID would orphan the real server."""
    try:
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
            # noida-db answers an empty fetch at once instead of holding it (kernel.eventlog.kafka_fetch)
            "kafka": f"kafka://127.0.0.1:{ports['kafka']}?empty_fetch_wait_ms={EMPTY_FETCH_WAIT_MS}",
            "elasticsearch": f"http://127.0.0.1:{ports['elasticsearch']}",
        }
