"""Finding a Java for Cassandra, and the facts about it that the launch command needs."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

from infra.local.services import StackError


@functools.cache
def java_major(java: str) -> int:
    """The major version of ``java`` (``1.8.0`` is 8), or 0 when it does not say."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return 0
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java() -> str:
    """A Java >= 11 (``--add-opens``): $EMPORIUM_JAVA, $JAVA_HOME, PATH, then /usr/lib/jvm/*."""
    candidates = [
        os.environ.get("EMPORIUM_JAVA"),
        str(Path(os.environ["JAVA_HOME"]) / "bin" / "java") if os.environ.get("JAVA_HOME") else None,
        shutil.which("java"),
        *sorted((str(p) for p in Path("/usr/lib/jvm").glob("*/bin/java")), reverse=True),
    ]
    seen: list[str] = []
    for java in candidates:
        if java and java not in seen and Path(java).exists():
            seen.append(java)
            if java_major(java) >= 11:
                return java
    found = ", ".join(f"{j} ({java_major(j)})" for j in seen) or "none"
    raise StackError(f"Cassandra needs Java >= 11 (found: {found}); apt-get install openjdk-17-jre-headless")


@functools.cache
def java_base_packages(java: str) -> tuple[str, ...]:
    """Every package of java.base: Cassandra 2.1 predates modules and reflects into many of them."""
    out = subprocess.run(
        [java, "--describe-module", "java.base"], capture_output=True, text=True, check=True
    ).stdout
    packages: set[str] = set()
    for line in out.splitlines():
        words = line.split()
        if words[:2] == ["qualified", "exports"] or words[:2] == ["qualified", "opens"]:
            packages.add(words[2])
        elif words and words[0] in ("exports", "contains", "opens") and len(words) > 1:
            packages.add(words[1])
    return tuple(sorted(packages))
