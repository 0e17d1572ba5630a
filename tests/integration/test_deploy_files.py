"""Every deployment file under infra/deploy is checked by the real tool for its kind, and each check is
shown to fail on a broken copy (so a validator that accepts anything is caught too). A tool that is not
installed fails the test with the install step (infra/deploy/tools.py), never skips it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import jsonschema_rs
import pytest
import yaml

from infra.deploy.tools import DEPLOY, ROOT, ToolMissing, compose_schema, tool

NGINX = DEPLOY / "nginx"
PROMETHEUS = DEPLOY / "prometheus"
K8S = DEPLOY / "k8s"
OVERLAYS = ("staging", "production")
KUBERNETES_VERSION = "1.30.0"


def _tool(name: str) -> str:
    try:
        return tool(name)
    except ToolMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def _run(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, cwd=cwd, timeout=120)


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"


def _fails(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0, f"{result.args} accepted a broken file:\n{result.stdout}{result.stderr}"


# ---- Nginx -------------------------------------------------------------------------------------------


def _nginx_t(conf_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on conf_dir/nginx.conf, with `api` (the compose service) resolving to loopback: the
    test runs in a private mount namespace whose /etc/hosts names it (nothing on the machine changes)."""
    nginx = _tool("nginx")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost api\n")
    script = 'mount --bind "$1" /etc/hosts && exec "$2" -t -q -p "$3" -c "$4" -e /dev/stderr'
    unshare = _tool("unshare")
    return _run(unshare, "-m", "sh", "-c", script, "sh", hosts, nginx, tmp_path, conf_dir / "nginx.conf")


def test_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    _ok(_nginx_t(NGINX, tmp_path))


def test_nginx_t_rejects_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "conf"
    shutil.copytree(NGINX, broken)
    edge = broken / "emporium-edge.conf"
    edge.write_text(edge.read_text().replace("proxy_next_upstream_tries 3;", "proxy_next_upstream_tries;"))
    _fails(_nginx_t(broken, tmp_path))


# ---- Prometheus ----------------------------------------------------------------------------------------


def test_prometheus_config_and_rules_pass_promtool() -> None:
    promtool = _tool("promtool")
    _ok(_run(promtool, "check", "config", PROMETHEUS / "prometheus.yml"))
    _ok(_run(promtool, "check", "rules", PROMETHEUS / "alerts.yml"))


def test_alerts_fire_on_their_unit_test_series() -> None:
    _ok(_run(_tool("promtool"), "test", "rules", "alerts_test.yml", cwd=PROMETHEUS))


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yml"
    rules.write_text((PROMETHEUS / "alerts.yml").read_text().replace("> 10000", "> > 10000", 1))
    _fails(_run(_tool("promtool"), "check", "rules", rules))


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "emporium-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _as_rules(exprs: list[str], path: Path) -> Path:
    """PromQL checked by promtool: each expression as a recording rule."""
    rules = [{"record": f"dashboard:panel_{i}", "expr": expr} for i, expr in enumerate(exprs)]
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return path


def test_grafana_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "emporium-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["panels"]
    exprs = _dashboard_exprs()
    assert len(exprs) >= 10
    _ok(_run(_tool("promtool"), "check", "rules", _as_rules(exprs, tmp_path / "ok.yml")))
    _fails(_run(_tool("promtool"), "check", "rules", _as_rules(["rate(x[5m]"], tmp_path / "bad.yml")))


# ---- Compose -------------------------------------------------------------------------------------------


def _compose_errors(document: object) -> list[str]:
    try:
        schema = json.loads(compose_schema().read_text())
    except ToolMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    validator = jsonschema_rs.validator_for(schema)
    return [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_matches_the_compose_spec_schema() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert not _compose_errors(compose)
    wanted = {"api", "projector", "nginx", "redis", "mysql", "kafka", "elasticsearch", "cassandra"}
    assert wanted | {"prometheus"} <= set(compose["services"])
    for mounted in ("nginx", "prometheus"):  # the config files it mounts exist
        for volume in compose["services"][mounted]["volumes"]:
            assert (DEPLOY / volume.split(":")[0]).exists(), volume


def test_compose_schema_rejects_a_broken_file() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    compose["services"]["api"]["deploy"]["replicas"] = "two"
    compose["services"]["nginx"]["helthcheck"] = {}
    assert len(_compose_errors(compose)) >= 2


# ---- Kubernetes ----------------------------------------------------------------------------------------


def _kustomize(directory: Path) -> list[dict]:
    result = _run(_tool("kubectl"), "kustomize", directory)
    _ok(result)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _kubernetes_validate(manifests: list[dict], path: Path) -> subprocess.CompletedProcess[str]:
    path.write_text(yaml.safe_dump_all(manifests))
    validate = _tool("kubernetes-validate")
    return _run(validate, "--strict", "--quiet", "-k", KUBERNETES_VERSION, path)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_overlays_build_and_pass_strict_kubernetes_schemas(overlay: str, tmp_path: Path) -> None:
    manifests = _kustomize(K8S / "overlays" / overlay)
    _ok(_kubernetes_validate(manifests, tmp_path / "all.yaml"))
    kinds = {(m["kind"], m["metadata"]["name"].rsplit("-", 1)[0]) for m in manifests}
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap", "Secret"):
        assert any(k == kind for k, _ in kinds), kind
    for deployment in (m for m in manifests if m["kind"] == "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        assert deployment["metadata"]["namespace"] == f"emporium-{overlay}"


def test_kubernetes_validate_rejects_a_broken_manifest(tmp_path: Path) -> None:
    manifests = _kustomize(K8S / "base")
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")  # a typo strict schemas catch
    _fails(_kubernetes_validate(manifests, tmp_path / "broken.yaml"))


# ---- Dockerfile ----------------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint_and_installs_this_version() -> None:
    dockerfile = DEPLOY / "Dockerfile"
    _ok(_run(_tool("hadolint"), "--no-color", dockerfile))
    text = dockerfile.read_text()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"emporium=={version}" in text, "the Dockerfile pins the version it installs: bump it"
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2, "multi-stage"
    assert re.search(r"^USER (?!root|0\b)\S+", text, re.M), "runs as a non-root user"


def test_hadolint_rejects_a_broken_dockerfile(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python\nRUN cd /src && pip install .\nUSER root\n")
    _fails(_run(_tool("hadolint"), "--no-color", broken))
