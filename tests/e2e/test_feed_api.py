"""Supplier feeds over HTTP: the real app (create_app) on a temporary embedded data dir."""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from emporium.adapters import EVENT_LOG
from emporium.app import create_app
from kernel.contracts.events import CATALOG_TOPIC, ProductUpserted, decode_event
from kernel.settings import Settings

ADMIN = "admin-token-for-tests"
MAX_BYTES = 64 * 1024
CSV = "text/csv"


@pytest.fixture(scope="module")
async def client(
    tmp_path_factory: pytest.TempPathFactory,
    embedded_settings: Callable[..., Settings],
    running_app: Callable[..., AbstractAsyncContextManager[Any]],
) -> AsyncIterator[AsyncTestClient]:
    settings = embedded_settings(
        tmp_path_factory.mktemp("feed-api"),
        admin_token=ADMIN,
        feed_max_bytes=MAX_BYTES,
        inprocess_projectors=False,
    )
    async with running_app(settings) as app:
        yield app.client


async def new_supplier(client: AsyncTestClient) -> tuple[str, dict[str, str]]:
    sid = f"sup-{uuid.uuid4().hex[:8]}"
    r = await client.post(
        "/v1/suppliers",
        json={"supplier_id": sid, "name": "Test"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert r.status_code == 201, r.text
    return sid, {"X-Api-Key": r.json()["api_key"]}


async def upserts(client: AsyncTestClient, supplier_id: str) -> list[tuple[str, int]]:
    """ProductUpserted events of the supplier, read through a log handle of the test's own."""
    return await upserts_in(client.app.state.runtime.settings.event_log_url, supplier_id)


async def upserts_in(event_log_url: str, supplier_id: str) -> list[tuple[str, int]]:
    log = EVENT_LOG.open(event_log_url)
    await log.start()
    consumer = log.consumer([CATALOG_TOPIC], f"t-{uuid.uuid4().hex}")
    await consumer.start()
    out = []
    try:
        while batch := await consumer.poll(5000, timeout=0.3):
            for rec in batch:
                ev = decode_event(rec.value)
                if isinstance(ev.payload, ProductUpserted) and ev.payload.product.supplier_id == supplier_id:
                    out.append((ev.key, ev.revision))
    finally:
        await consumer.stop()
        await log.close()
    return out


def csv_body(n: int, start: int = 0, suffix: str = "") -> bytes:
    lines = ["sku,title,price,currency,category_path,stock.wh-north"]
    lines += [f"S{i},Item {i}{suffix},{i}.25,INR,Home > Decor,{i % 5}" for i in range(start, start + n)]
    return ("\n".join(lines) + "\n").encode()


async def test_admin_creates_suppliers(client: AsyncTestClient) -> None:
    body = {"supplier_id": f"adm-{uuid.uuid4().hex[:6]}"}
    assert (await client.post("/v1/suppliers", json=body)).status_code == 401
    r = await client.post("/v1/suppliers", json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 403 and r.json()["detail"]
    assert (
        await client.post("/v1/suppliers", json=body, headers={"Authorization": f"Bearer {ADMIN}"})
    ).status_code == 201
    r = await client.post("/v1/suppliers", json=body, headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 409
    r = await client.post(
        "/v1/suppliers", json={"supplier_id": "a:b"}, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert r.status_code == 422


async def test_push_csv_then_get_report_then_repush_publishes_nothing(client: AsyncTestClient) -> None:
    sid, key = await new_supplier(client)
    r = await client.post(
        f"/v1/suppliers/{sid}/feeds", content=csv_body(50), headers={**key, "Content-Type": CSV}
    )
    assert r.status_code == 201, r.text
    report = r.json()
    assert (report["accepted"], report["rejected"], report["changed"], report["status"]) == (
        50,
        0,
        50,
        "completed",
    )
    assert r.headers["location"] == f"/v1/suppliers/{sid}/feeds/{report['feed_id']}"
    got = await client.get(r.headers["location"], headers=key)
    assert got.status_code == 200 and got.json()["accepted"] == 50
    assert len(await upserts(client, sid)) == 50

    again = await client.post(
        f"/v1/suppliers/{sid}/feeds", content=csv_body(50), headers={**key, "Content-Type": CSV}
    )
    assert again.status_code == 201 and (again.json()["unchanged"], again.json()["changed"]) == (50, 0)
    assert len(await upserts(client, sid)) == 50

    assert (await client.get(f"/v1/suppliers/{sid}/feeds/{uuid.uuid4().hex}", headers=key)).status_code == 404


async def test_auth_401_and_403(client: AsyncTestClient) -> None:
    sid, key = await new_supplier(client)
    other, other_key = await new_supplier(client)
    url = f"/v1/suppliers/{sid}/feeds"
    r = await client.post(url, content=csv_body(1), headers={"Content-Type": CSV})
    assert r.status_code == 401 and r.json()["status_code"] == 401
    r = await client.post(url, content=csv_body(1), headers={"Content-Type": CSV, "X-Api-Key": "emp_abc_def"})
    assert r.status_code == 401
    bad = key["X-Api-Key"][:-3] + "zzz"
    assert (
        await client.post(url, content=csv_body(1), headers={"Content-Type": CSV, "X-Api-Key": bad})
    ).status_code == 401
    r = await client.post(url, content=csv_body(1), headers={**other_key, "Content-Type": CSV})
    assert r.status_code == 403
    ok = await client.post(url, content=csv_body(1), headers={**key, "Content-Type": CSV})
    assert (
        await client.get(f"/v1/suppliers/{sid}/feeds/{ok.json()['feed_id']}", headers=other_key)
    ).status_code == 403
    # Nobody published into the other supplier's namespace.
    assert await upserts(client, other) == []
    assert [k for k, _ in await upserts(client, sid)] == [f"{sid}:S0"]


async def test_a_feed_cannot_touch_another_suppliers_products(client: AsyncTestClient) -> None:
    sid, key = await new_supplier(client)
    victim, _ = await new_supplier(client)
    body = "\n".join(
        [
            json.dumps({"product_id": f"{victim}:X", "sku": "X", "title": "mine now", "price": 1}),
            json.dumps({"supplier_id": victim, "sku": "Y", "title": "mine now", "price": 1}),
        ]
    ).encode()
    r = await client.post(
        f"/v1/suppliers/{sid}/feeds", content=body, headers={**key, "Content-Type": "application/x-ndjson"}
    )
    assert r.status_code == 201
    assert (r.json()["accepted"], r.json()["rejected"]) == (1, 1)
    assert await upserts(client, victim) == []
    assert [k for k, _ in await upserts(client, sid)] == [f"{sid}:{victim}:X"]


async def test_whole_body_errors(client: AsyncTestClient) -> None:
    sid, key = await new_supplier(client)
    url = f"/v1/suppliers/{sid}/feeds"
    r = await client.post(url, content=b"", headers={**key, "Content-Type": CSV})
    assert r.status_code == 400 and "empty" in r.json()["detail"]
    r = await client.post(url, content=b"<xml/>", headers={**key, "Content-Type": "application/xml"})
    assert r.status_code == 415
    r = await client.post(url, content=csv_body(1), headers={**key})
    assert r.status_code == 415
    r = await client.post(url, content=b"name,cost\nx,1\n", headers={**key, "Content-Type": CSV})
    assert r.status_code == 422 and "sku" in r.json()["detail"]
    r = await client.post(url, content=b'{"sku": 1}', headers={**key, "Content-Type": "application/json"})
    assert r.status_code == 422
    r = await client.post(url + "?profile=nope", content=csv_body(1), headers={**key, "Content-Type": CSV})
    assert r.status_code == 400
    r = await client.post(url + "?mode=sometimes", content=csv_body(1), headers={**key, "Content-Type": CSV})
    assert r.status_code == 400
    big = csv_body(3000)
    assert len(big) > MAX_BYTES
    r = await client.post(url, content=big, headers={**key, "Content-Type": CSV})
    assert r.status_code == 413

    # A chunked body without Content-Length is covered against a real server in test_demo.py.
    assert await upserts(client, sid) == []


async def test_per_line_rejections_in_every_format(client: AsyncTestClient) -> None:
    sid, key = await new_supplier(client)
    url = f"/v1/suppliers/{sid}/feeds"
    csv_bad = b'sku,title,price\nA,ok,1\nB,,1\nC,x,abc\n"D,unterminated,1\n'
    r = (await client.post(url, content=csv_bad, headers={**key, "Content-Type": CSV})).json()
    assert (r["accepted"], r["rejected"]) == (1, 3)
    assert [e["line"] for e in r["errors"]] == [3, 4, 5]
    nd = (
        b'{"sku":"E","title":"ok","price":"2"}\n{"sku":"F","title":"t","price":-1}\n'
        b'not json\n[1,2]\n{"sku":"\xff"}\n'
    )
    r = (await client.post(url, content=nd, headers={**key, "Content-Type": "application/x-ndjson"})).json()
    assert (r["accepted"], r["rejected"]) == (1, 4) and [e["line"] for e in r["errors"]] == [2, 3, 4, 5]
    arr = (
        b'[{"sku":"G","title":"ok","price":3},\n {"sku":"H","title":"t","price":"x"},\n'
        b' {"title":"no sku","price":1}]'
    )
    r = (await client.post(url, content=arr, headers={**key, "Content-Type": "application/json"})).json()
    assert (r["accepted"], r["rejected"]) == (1, 2) and [e["line"] for e in r["errors"]] == [2, 3]
    assert sorted(k for k, _ in await upserts(client, sid)) == [f"{sid}:A", f"{sid}:E", f"{sid}:G"]


async def test_gzip_bodies_and_truncated_gzip(client: AsyncTestClient) -> None:
    sid, key = await new_supplier(client)
    url = f"/v1/suppliers/{sid}/feeds"
    body = gzip.compress(csv_body(200))
    r = await client.post(url, content=body, headers={**key, "Content-Type": CSV, "Content-Encoding": "gzip"})
    assert r.status_code == 201 and r.json()["accepted"] == 200 and r.json()["status"] == "completed"
    # Random-looking content so the cut lands mid-stream; full mode must not remove anything then.
    lines = ["sku,title,price"] + [f"S{i},{uuid.uuid4().hex},{i}" for i in range(200)]
    whole = gzip.compress(("\n".join(lines) + "\n").encode())
    r = await client.post(
        url + "?mode=full",
        content=whole[: len(whole) // 2],
        headers={**key, "Content-Type": CSV, "Content-Encoding": "gzip"},
    )
    report = r.json()
    assert r.status_code == 201 and report["status"] == "partial" and report["removed"] == 0
    assert "truncated" in report["errors"][-1]["reason"]
    assert report["accepted"] + 1 == report["errors"][-1]["line"] - 1


async def test_full_mode_over_http(client: AsyncTestClient) -> None:
    sid, key = await new_supplier(client)
    url = f"/v1/suppliers/{sid}/feeds"
    await client.post(url, content=csv_body(30), headers={**key, "Content-Type": CSV})
    r = await client.post(
        url + "?mode=full", content=csv_body(20, suffix=" v2"), headers={**key, "Content-Type": CSV}
    )
    assert (r.json()["changed"], r.json()["removed"]) == (20, 10)
    revisions = dict(await upserts(client, sid))
    assert revisions[f"{sid}:S0"] == 2 and revisions[f"{sid}:S29"] == 1


async def test_readiness_includes_the_ingest_store(client: AsyncTestClient) -> None:
    r = await client.get("/readyz")
    assert r.json()["checks"]["ingest.store"] == "ok"
    metrics = (await client.get("/metrics")).text
    assert "emporium_ingest_lines_total" in metrics


# -- hostile feeds ------------------------------------------------------------------------------


async def test_a_gzip_bomb_is_413_at_once(client: AsyncTestClient) -> None:
    sid, key = await new_supplier(client)
    url = f"/v1/suppliers/{sid}/feeds"
    for plain in (b"sku,title,price\n" + b"a" * (32 << 20), b"sku,title,price\n" + b"\n" * (32 << 20)):
        body = gzip.compress(plain)
        assert len(body) < MAX_BYTES
        started = time.perf_counter()
        r = await client.post(
            url, content=body, headers={**key, "Content-Type": CSV, "Content-Encoding": "gzip"}
        )
        assert r.status_code == 413, r.text
        assert f"larger than the limit of {MAX_BYTES} bytes once decompressed" in r.json()["detail"]
        assert time.perf_counter() - started < 10
    ok = await client.post(url, content=gzip.compress(csv_body(5)), headers={**key, "Content-Type": CSV})
    assert ok.status_code == 201 and ok.json()["accepted"] == 5  # the lease was released


async def test_nesting_and_repeated_keys_reject_one_line(client: AsyncTestClient) -> None:
    sid, key = await new_supplier(client)
    deep = b'{"sku":"D","title":' * 1000 + b'"x"' + b"}" * 1000
    lines = [
        b'{"sku":"A","title":"a","price":1}',
        deep,
        b'{"sku":"B","title":"b","price":1,"price":2}',
        b'{"sku":"C","title":"c","price":1}',
    ]
    for content_type, body in (
        ("application/x-ndjson", b"\n".join(lines)),
        ("application/json", b"[" + b",\n".join(lines) + b"]"),
    ):
        r = await client.post(
            f"/v1/suppliers/{sid}/feeds", content=body, headers={**key, "Content-Type": content_type}
        )
        assert r.status_code == 201, r.text
        report = r.json()
        assert (report["accepted"], report["rejected"], report["status"]) == (2, 2, "completed")
        assert [(e["line"], e["reason"]) for e in report["errors"]] == [
            (2, "JSON nested deeper than 32 levels"),
            (3, "duplicate key 'price' in a JSON object"),
        ]


def feed_rows(db: Path, supplier_id: str) -> list[tuple[str, str, bytes]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT feed_id, status, report FROM ingest_feeds WHERE supplier_id = ? ORDER BY created_at",
            (supplier_id,),
        ).fetchall()


async def wait_for(check: Callable[[], Any], what: str, within: float = 30) -> Any:
    deadline = time.monotonic() + within
    while not (found := check()):
        assert time.monotonic() < deadline, f"no {what} within {within}s"
        await asyncio.sleep(0.05)
    return found


async def test_a_client_that_goes_away_stops_its_import(
    tmp_path: Path,
    embedded_settings: Callable[..., Settings],
    served_app: Callable[[Litestar], AbstractAsyncContextManager[str]],
) -> None:
    settings = embedded_settings(tmp_path, admin_token=ADMIN, inprocess_projectors=False)
    rows = 200_000
    body = csv_body(rows)
    async with served_app(create_app(settings)) as base, httpx.AsyncClient(base_url=base, timeout=60) as http:
        created = await http.post(
            "/v1/suppliers", json={"supplier_id": "gone"}, headers={"Authorization": f"Bearer {ADMIN}"}
        )
        key = {"X-Api-Key": created.json()["api_key"]}
        host, port = base.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        head = (
            f"POST /v1/suppliers/gone/feeds HTTP/1.1\r\nHost: x\r\nContent-Type: {CSV}\r\n"
            f"X-Api-Key: {key['X-Api-Key']}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        db = settings.data_dir / "emporium.db"
        await wait_for(
            lambda: [r for r in feed_rows(db, "gone") if r[1] == "processing"], "import in progress"
        )
        writer.close()  # the client goes away mid-import
        await wait_for(lambda: [r for r in feed_rows(db, "gone") if r[1] == "failed"], "failed report", 20)
        [(_, _, raw)] = feed_rows(db, "gone")
        report = json.loads(raw)
        assert "client disconnected" in report["notes"][-1]
        assert 0 < report["accepted"] < rows
        assert len(await upserts_in(settings.event_log_url, "gone")) == report["changed"]
        again = await http.post(  # the lease was released at once
            "/v1/suppliers/gone/feeds", content=csv_body(3, start=rows), headers={**key, "Content-Type": CSV}
        )
        assert again.status_code == 201, again.text
