"""Apache Cassandra 2.1.0 run directly on Java 17 (``bin/cassandra`` only knows Java 7/8).

No JMX port: 2.1.0 opens one only when com.sun.management.jmxremote.port is set, and it is not, so two
stacks never clash on 7199.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.local.servers.base import LaunchPlan, ServerSpec
from infra.local.servers.java import find_java, java_base_packages
from infra.local.services import APP_DATABASE, CASSANDRA_PROTOCOL_VERSION, StackError

LOCAL_DIR = Path(__file__).resolve().parents[1]
CASSANDRA_HOME = LOCAL_DIR / "vendor" / "apache-cassandra-2.1.0"
INSTALL_SCRIPT = LOCAL_DIR / "install-cassandra.sh"

LOGBACK = """<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level %date{HH:mm:ss,SSS} [%thread] %logger{0} %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
  <logger name="com.thinkaurelius.thrift" level="ERROR"/>
</configuration>
"""


class CassandraSpec(ServerSpec):
    name = "cassandra"
    services = ("cassandra",)
    port_names = ("native", "storage", "ssl_storage")
    stop_grace = 60.0

    def check_installed(self) -> None:
        """Java, and Cassandra itself: installed on first use (the script is idempotent), so plain
        ``pytest`` works on a clone where infra/bootstrap.sh has not run yet."""
        find_java()
        if (CASSANDRA_HOME / "conf" / "cassandra.json").is_file():
            return
        result = subprocess.run([str(INSTALL_SCRIPT)], capture_output=True, text=True, check=False)
        if result.returncode != 0 or not (CASSANDRA_HOME / "conf" / "cassandra.json").is_file():
            raise StackError(
                f"Cassandra 2.1.0 is not installed in {CASSANDRA_HOME} and {INSTALL_SCRIPT} failed "
                f"(exit {result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}"
            )

    def prepare(self, home: Path, data_dir: Path, ports: Mapping[str, int]) -> LaunchPlan:
        java = find_java()
        conf = home / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        for sub in ("data", "commitlog", "saved_caches", "tmp"):
            (data_dir / sub).mkdir(parents=True, exist_ok=True)
        # JSON is valid YAML, and Cassandra reads YAML.
        (conf / "cassandra.yaml").write_text(json.dumps(_settings(data_dir, ports), indent=2))
        (conf / "logback.xml").write_text(LOGBACK)
        return LaunchPlan(_command(java, home, conf, data_dir), cwd=home)

    def urls(self, ports: Mapping[str, int]) -> dict[str, str]:
        return {
            "cassandra": f"cassandra://127.0.0.1:{ports['native']}/{APP_DATABASE}"
            f"?protocol_version={CASSANDRA_PROTOCOL_VERSION}"
        }


def _settings(data_dir: Path, ports: Mapping[str, int]) -> dict[str, Any]:
    """The package's default settings (``cassandra.json``) for one loopback node."""
    settings: dict[str, Any] = json.loads((CASSANDRA_HOME / "conf" / "cassandra.json").read_text())
    settings.update(
        {
            "cluster_name": "emporium-local",
            "listen_address": "127.0.0.1",
            "rpc_address": "127.0.0.1",
            "start_rpc": False,
            "native_transport_port": ports["native"],
            "storage_port": ports["storage"],
            "ssl_storage_port": ports["ssl_storage"],
            "seed_provider": [
                {
                    "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                    "parameters": [{"seeds": "127.0.0.1"}],
                }
            ],
            "data_file_directories": [str(data_dir / "data")],
            "commitlog_directory": str(data_dir / "commitlog"),
            "saved_caches_directory": str(data_dir / "saved_caches"),
            # Tests drop keyspaces all the time; a snapshot per drop only costs time and disk.
            "auto_snapshot": False,
            # One node: vnodes buy nothing, and 256 of them split every full scan 256 ways.
            "num_tokens": 1,
        }
    )
    return settings


def _command(java: str, home: Path, conf: Path, data_dir: Path) -> list[str]:
    lib = CASSANDRA_HOME / "lib"
    tmp_dir = data_dir / "tmp"
    classpath = [str(conf), *sorted(str(jar) for jar in lib.glob("*.jar"))]
    add_opens = [f"--add-opens=java.base/{pkg}=ALL-UNNAMED" for pkg in java_base_packages(java)]
    return [
        java,
        "-ea", f"-javaagent:{lib / 'jamm-0.2.6.jar'}",
        "-Xms512m", "-Xmx1g", "-Xss512k", "-XX:+UseG1GC",
        "-XX:+PerfDisableSharedMem",  # no /tmp/hsperfdata file left behind after a kill
        # Temp files (JNA unpacks its native library) stay in the stack dir, not in /tmp.
        f"-Djava.io.tmpdir={tmp_dir}", f"-Djna.tmpdir={tmp_dir}",
        "-Djava.net.preferIPv4Stack=true",
        *add_opens,
        f"-Dcassandra.config={(conf / 'cassandra.yaml').as_uri()}",
        f"-Dlogback.configurationFile={conf / 'logback.xml'}",
        f"-Dcassandra.logdir={home}",
        f"-Dcassandra.storagedir={data_dir}",
        "-Dcassandra-foreground=yes",
        # One node, nobody to gossip with: do not wait for gossip to settle.
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-cp", os.pathsep.join(classpath),
        "org.apache.cassandra.service.CassandraDaemon",
    ]  # fmt: skip
