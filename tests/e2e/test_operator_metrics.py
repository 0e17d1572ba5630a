"""The metrics the alerts and the dashboard (infra/deploy/prometheus, infra/deploy/grafana) are written
against: each one they name is exported, and the new ones move when their event happens."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from infra.deploy.tools import DEPLOY
from inventory.cluster.records import Stats
from inventory.metrics import EngineCollector

TOKEN = "metrics-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def _named_by_operators() -> set[str]:
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    dashboard = json.loads((DEPLOY / "grafana" / "emporium-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [r["expr"] for g in yaml.safe_load(rules)["groups"] for r in g["rules"]]
    return set(re.findall(r"\bemporium_[a-z_]+", " ".join(exprs)))


def _exported(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES)
    return names


def _value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def _engine_metrics() -> str:
    """What a cluster engine (Redis fast path) exports, from its counters."""
    registry = CollectorRegistry()
    stats = Stats(reconciles=2, reconcile_failures=1, last_reconcile_at=1_700_000_100.0)
    fast_path = SimpleNamespace(losses=1, last_loss_at=1_700_000_000.0)
    registry.register(EngineCollector(SimpleNamespace(stats=stats, fast_path=fast_path)))
    return generate_latest(registry).decode()


@pytest.mark.asyncio
async def test_every_metric_the_alerts_and_dashboard_name_is_exported(
    running_app, embedded_settings, tmp_path: Path
) -> None:
    settings = embedded_settings(tmp_path, admin_token=TOKEN, rate_limit_anonymous="2/minute")
    async with running_app(settings) as app:
        client = app.client
        assert (await client.put("/v1/stock/shop:A", json={"on_hand": 1}, headers=ADMIN)).status_code == 200
        shop = await client.post("/v1/storefronts", json={"storefront_id": "shop"}, headers=ADMIN)
        key = {"X-Api-Key": shop.json()["api_key"]}
        body = {"sku": "shop:A", "quantity": 1, "customer_id": "c1"}
        assert (await client.post("/v1/reservations", json=body, headers=key)).status_code == 201
        assert (await client.post("/v1/reservations", json=body, headers=key)).status_code == 409
        statuses = [(await client.get("/v1/search", params={"q": "x"})).status_code for _ in range(4)]
        assert 429 in statuses
        text = (await client.get("/metrics")).text
    exported = _exported(text) | _exported(_engine_metrics())
    missing = sorted(_named_by_operators() - exported)
    assert not missing, f"alerts or dashboard name metrics nobody exports: {missing}"
    assert _value(text, "emporium_reservations_total", action="reserve", outcome="ok") == 1
    assert _value(text, "emporium_reservations_total", action="reserve", outcome="insufficient_stock") == 1
    assert _value(text, "emporium_rate_limit_refusals_total", policy="anonymous") >= 1
    age = _value(text, "emporium_projector_event_age_seconds", projector="stock")
    assert 0 <= age < 60, age  # the stock projector applied the stock event just now


def test_engine_collector_reports_losses_and_reconciles() -> None:
    text = _engine_metrics()
    assert _value(text, "emporium_inventory_fast_path_losses_total") == 1
    assert _value(text, "emporium_inventory_reconciles_total", outcome="failed") == 1
    assert _value(text, "emporium_inventory_reconcile_last_success_timestamp_seconds") == 1_700_000_100.0


@pytest.mark.asyncio
async def test_probes_are_never_rate_limited_and_everything_else_still_is(
    running_app, embedded_settings, tmp_path: Path
) -> None:
    """An orchestrator or load balancer probing far past the anonymous limit is always answered (a 429
    would take a healthy instance out of service); the probes use none of the address's budget, and every
    other route of every group is still counted and refused past it."""
    settings = embedded_settings(tmp_path, admin_token=TOKEN, rate_limit_anonymous="2/minute")
    async with running_app(settings) as app:
        client = app.client
        for _ in range(5):
            for probe in ("/healthz", "/readyz", "/metrics"):
                assert (await client.get(probe)).status_code == 200, probe
        document = (await client.get("/docs/openapi.json")).json()["paths"]
        assert "429" in document["/v1/search"]["get"]["responses"]
        for probe in ("/healthz", "/readyz", "/metrics"):  # documented as never refused
            assert "429" not in document[probe]["get"]["responses"], probe
        # the limit is 2: the third call of each group is refused (the document was the operations' first)
        for path, made in (("/v1/search?q=x", 0), ("/docs/openapi.json", 1), ("/v1/stock/shop:A", 0)):
            statuses = [(await client.get(path)).status_code for _ in range(3 - made)]
            assert statuses[-1] == 429 and 429 not in statuses[:-1], (path, statuses)
        assert (await client.get("/healthz")).status_code == 200  # refused elsewhere, probed still
        text = (await client.get("/metrics")).text
    assert _value(text, "emporium_rate_limit_refusals_total", policy="anonymous") == 3
