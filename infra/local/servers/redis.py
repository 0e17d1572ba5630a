"""Redis from Debian's ``redis-server``, in memory only, on its own loopback port."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from infra.local.servers.base import LaunchPlan, ServerSpec, require


class RedisSpec(ServerSpec):
    name = "redis"
    services = ("redis",)
    port_names = ("redis",)
    stop_grace = 15.0

    def check_installed(self) -> None:
        require("redis-server", "install it: apt-get install redis-server (infra/bootstrap.sh does)")

    def prepare(self, home: Path, data_dir: Path, ports: Mapping[str, int]) -> LaunchPlan:
        redis = require("redis-server", "apt-get install redis-server")
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
