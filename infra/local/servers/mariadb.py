"""MariaDB from Debian's ``mariadb-server``, bootstrapped into a throw-away data dir.

``--no-defaults`` comes first everywhere: /etc/mysql names the system server's socket and port, which
must never be touched.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from infra.local.servers.base import LaunchPlan, ServerSpec, require
from infra.local.services import APP_DATABASE, APP_PASSWORD, APP_USER, StackError


class MariadbSpec(ServerSpec):
    """MariaDB sized for tests. Durability stays on (innodb_flush_log_at_trx_commit=1): inventory
    is the source of truth and its crash/restart tests must see what production would."""

    name = "mariadb"
    services = ("mariadb",)
    port_names = ("mariadb",)
    stop_grace = 60.0

    SETTINGS: tuple[str, ...] = (
        "--max-connections=2000",
        "--innodb-buffer-pool-size=256M",
        "--innodb-log-file-size=64M",
        "--innodb-flush-log-at-trx-commit=1",
        "--performance-schema=OFF",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_unicode_ci",
        "--max-allowed-packet=64M",
        "--skip-log-bin",
    )

    def check_installed(self) -> None:
        require("mariadbd", "install it: apt-get install mariadb-server", "/usr/sbin")
        require("mariadb-install-db", "install it: apt-get install mariadb-server")

    def prepare(self, home: Path, data_dir: Path, ports: Mapping[str, int]) -> LaunchPlan:
        mariadbd = require("mariadbd", "apt-get install mariadb-server", "/usr/sbin")
        run_dir = _short_dir(home / "run")
        tmp_dir = data_dir.parent / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        _install_db(data_dir)
        init_file = _write_init_file(home / "init.sql")
        return LaunchPlan(
            [
                mariadbd, "--no-defaults", f"--datadir={data_dir}", "--user=root",
                f"--socket={run_dir / 'mariadb.sock'}", f"--pid-file={run_dir / 'mariadb.pid'}",
                f"--port={ports['mariadb']}", "--bind-address=127.0.0.1", "--skip-name-resolve",
                f"--tmpdir={tmp_dir}", f"--init-file={init_file}", *self.SETTINGS,
            ]
        )  # fmt: skip

    def urls(self, ports: Mapping[str, int]) -> dict[str, str]:
        # This server offers no TLS: say so, or every connect pays PyMySQL's TLS context for "preferred".
        base = f"mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{ports['mariadb']}/{APP_DATABASE}"
        return {"mariadb": f"{base}?ssl_mode=disabled"}


def _install_db(data_dir: Path) -> None:
    install_db = require("mariadb-install-db", "apt-get install mariadb-server")
    bootstrap = subprocess.run(
        [
            install_db, "--no-defaults", f"--datadir={data_dir}", "--user=root",
            "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
            # --force: no host name lookup, so a machine without /etc/hosts or DNS works too.
            "--force", "--innodb-log-file-size=64M",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
    )  # fmt: skip
    if bootstrap.returncode != 0:
        raise StackError(f"mariadb-install-db failed:\n{bootstrap.stdout[-4000:]}")


def _write_init_file(path: Path) -> Path:
    """The app's database and user (``--skip-name-resolve`` needs the 127.0.0.1 one)."""
    users = [f"'{APP_USER}'@'127.0.0.1'", f"'{APP_USER}'@'localhost'"]
    path.write_text(
        f"CREATE DATABASE IF NOT EXISTS `{APP_DATABASE}`;\n"
        + "".join(f"CREATE USER IF NOT EXISTS {u} IDENTIFIED BY '{APP_PASSWORD}';\n" for u in users)
        # ON *.*: tests create databases of their own.
        + "".join(f"GRANT ALL PRIVILEGES ON *.* TO {u};\n" for u in users)
    )
    return path


def _short_dir(preferred: Path) -> Path:
    """A dir for unix sockets: ``preferred`` unless its path is too long for sun_path (108 bytes)."""
    if len(str(preferred / "mariadb.sock")) < 100:
        preferred.mkdir(parents=True, exist_ok=True)
        return preferred
    return Path(tempfile.mkdtemp(prefix="emporium-stack-"))
