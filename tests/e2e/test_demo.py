"""The README's run path: ``emporium demo`` seeds the synthetic catalog idempotently and serves it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from emporium.container import ingest_service
from emporium.demo import DEMO_SEED, DEMO_SUPPLIER, demo_key_path, demo_storefront_key_path, seed_demo
from ingest.service import import_path
from ingest.synthetic import WAREHOUSES, generate_products
from kernel.settings import load_settings


def test_synthetic_catalog_is_deterministic_and_realistic() -> None:
    a = list(generate_products(400, seed=42))
    assert a == list(generate_products(400, seed=42))
    assert a != list(generate_products(400, seed=43))
    assert len({p["product_id"] for p in a}) == 400
    assert len({p["category_path"][0] for p in a}) >= 5 and len({p["brand"] for p in a}) >= 20
    out_of_stock = [p for p in a if not any(p["stock"].values())]
    assert 0 < len(out_of_stock) < 60
    assert all(set(p["stock"]) == set(WAREHOUSES) for p in a)


def test_seed_demo_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings(env={}, data_dir=str(tmp_path))
    first = seed_demo(settings, products=300)
    out = capsys.readouterr().out
    key = demo_key_path(settings).read_text().strip()
    assert key in out.splitlines()
    storefront_key = demo_storefront_key_path(settings).read_text().strip()
    assert storefront_key.startswith("sfk_") and storefront_key in out.splitlines()
    assert first is not None and (first.accepted, first.changed, first.rejected) == (300, 300, 0)
    started = time.perf_counter()
    assert seed_demo(settings, products=300) is None  # every demo product is there: nothing to import
    assert time.perf_counter() - started < 10
    assert key not in capsys.readouterr().out  # the keys are printed once
    assert seed_demo(settings, products=250) is None  # asking for fewer removes nothing
    larger = seed_demo(settings, products=320)
    assert larger is not None and (larger.accepted, larger.changed, larger.removed) == (20, 20, 0)


def test_rerunning_the_demo_keeps_what_a_user_pushed(tmp_path: Path) -> None:
    """`make run` again must not delete (or revert) products a user pushed as the demo supplier."""
    settings = load_settings(env={}, data_dir=str(tmp_path))
    seed_demo(settings, products=100)
    user_feed = tmp_path / "mine.csv"
    user_feed.write_text("sku,title,price\nUSER-1,My own product,5\nSYN-000001,My better title,7\n")
    ids = [f"{DEMO_SUPPLIER}:USER-1", f"{DEMO_SUPPLIER}:SYN-000001", f"{DEMO_SUPPLIER}:SYN-000100"]

    async def push_and_read(push: bool) -> dict[str, Any]:
        async with ingest_service(settings) as service:
            if push:
                await import_path(service, user_feed, supplier_id=DEMO_SUPPLIER)
            return await service.store.product_states(DEMO_SUPPLIER, ids)

    pushed = asyncio.run(push_and_read(True))
    assert len(pushed) == 3
    for products in (100, 50, 100):
        seed_demo(settings, products=products)
    assert asyncio.run(push_and_read(False)) == pushed


@pytest.mark.slow
def test_emporium_demo_serves_the_seeded_catalog(
    tmp_path: Path, emporium_demo: Callable[..., AbstractContextManager[Any]]
) -> None:
    env = {"EMPORIUM_FEED_MAX_BYTES": "65536", "EMPORIUM_LOG_LEVEL": "warning"}
    with emporium_demo(tmp_path, products=400, **env) as demo:
        base = demo.base_url
        # As soon as it answers, the demo is ready and its products have their feed stock.
        ready = httpx.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["checks"]["inventory.stock_feed"] == "ok", ready.text
        in_stock = next(p for p in generate_products(400, seed=DEMO_SEED) if any(p["stock"].values()))
        sku = f"{DEMO_SUPPLIER}:{in_stock['sku']}"  # stock is keyed by the supplier-scoped SKU
        stock = httpx.get(f"{base}/v1/stock/{sku}", timeout=10)
        assert stock.status_code == 200 and stock.json()["on_hand"] == sum(in_stock["stock"].values())
        # ...and search already shows it in stock, under the key a reservation takes
        product = httpx.get(f"{base}/v1/products/{DEMO_SUPPLIER}:{in_stock['product_id']}", timeout=10).json()
        assert (product["sku"], product["in_stock"]) == (sku, True)
        key = (tmp_path / "demo" / "demo-supplier-api-key").read_text().strip()
        headers = {"X-Api-Key": key, "Content-Type": "text/csv"}
        feeds = f"{base}/v1/suppliers/{DEMO_SUPPLIER}/feeds"

        def chunks():  # no Content-Length: the 64 KiB limit must be enforced while streaming
            yield b"sku,title,price\n"
            for i in range(2000):
                yield f"BIG-{i},Filler item {i} with a long enough title,1\n".encode()

        assert httpx.post(feeds, content=chunks(), headers=headers, timeout=30).status_code == 413
        r = httpx.post(
            feeds, content=b"sku,title,price\nNEW-1,Brand new thing,9.99\n", headers=headers, timeout=30
        )
        assert r.status_code == 201, r.text
        assert (r.json()["accepted"], r.json()["changed"]) == (1, 1)
        report = httpx.get(base + r.headers["location"], headers={"X-Api-Key": key}, timeout=10)
        assert report.status_code == 200 and report.json()["feed_id"] == r.json()["feed_id"]
        assert httpx.get(base + r.headers["location"]).status_code == 401
    (output,) = demo.output
    # The demo printed its feed report (JSON) before serving.
    start = output.index("{\n")
    seeded = json.loads(output[start : output.index("\n}\n", start) + 2])
    assert seeded["supplier_id"] == DEMO_SUPPLIER and seeded["accepted"] == 400
