"""Stock belongs to the supplier, and what search shows in stock can be bought (issue 13).

The real app on a temporary embedded data dir, with its in-process projectors: SKUs are scoped by their
supplier (``<supplier_id>:<sku>``) in stock routes, reservations and search hits, so one supplier's feed
can never touch another's stock; a catalog without stock columns is buyable with a default stock; stock
feeds report per line; an admin restock keeps ``available + held + sold == on_hand`` and the warehouse
breakdown whole.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from emporium.app import create_app
from kernel.settings import Settings

ADMIN = "admin-token-for-stock-tests"
BEARER = {"Authorization": f"Bearer {ADMIN}"}
CSV = {"Content-Type": "text/csv"}
DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
EVENTUAL_S = 20.0
T = TypeVar("T")


@pytest.fixture(scope="module")
async def client(
    tmp_path_factory: pytest.TempPathFactory,
    embedded_settings: Callable[..., Settings],
    running_app: Callable[..., AbstractAsyncContextManager[Any]],
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = embedded_settings(tmp_path_factory.mktemp("supplier-stock"), admin_token=ADMIN)
    async with running_app(settings) as app:
        yield app.client


async def eventually(probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], what: str) -> T:
    """Poll ``probe`` until ``ok`` holds (effects that go through the event log are asynchronous)."""
    deadline = time.monotonic() + EVENTUAL_S
    while True:
        value = await probe()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"{what}: still {value!r} after {EVENTUAL_S}s"
        await asyncio.sleep(0.1)


async def new_supplier(client: Any, prefix: str = "sup") -> tuple[str, dict[str, str]]:
    supplier_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    r = await client.post("/v1/suppliers", json={"supplier_id": supplier_id}, headers=BEARER)
    assert r.status_code == 201, r.text
    return supplier_id, {"X-Api-Key": r.json()["api_key"]}


async def new_storefront(client: Any) -> dict[str, str]:
    """The headers of a fresh storefront: reservations are a storefront's (``X-Api-Key: sfk_...``)."""
    r = await client.post(
        "/v1/storefronts", json={"storefront_id": f"shop-{uuid.uuid4().hex[:8]}"}, headers=BEARER
    )
    assert r.status_code == 201, r.text
    return {"X-Api-Key": r.json()["api_key"]}


async def push(client: Any, supplier_id: str, key: dict[str, str], body: str, **params: Any) -> Any:
    r = await client.post(
        f"/v1/suppliers/{supplier_id}/feeds", content=body.encode(), headers={**key, **CSV}, params=params
    )
    assert r.status_code == 201, r.text
    return r.json()


async def on_hand(client: Any, sku: str) -> int | None:
    r = await client.get(f"/v1/stock/{sku}")
    return r.json()["on_hand"] if r.status_code == 200 else None


async def test_another_suppliers_feed_cannot_change_demo_stock(client: AsyncTestClient[Litestar]) -> None:
    demo, demo_key = await new_supplier(client, "demo")
    other, other_key = await new_supplier(client, "other")
    header = "sku,title,price,stock.wh-north\n"
    await push(client, demo, demo_key, header + "SYN-000010,Demo kettle,10,5\n")
    await eventually(lambda: on_hand(client, f"{demo}:SYN-000010"), lambda v: v == 5, "demo's feed stock")

    for i, quantity in enumerate((0, 0, 0, 99_999)):  # the attack of finding 1: B pushes demo's SKU
        await push(client, other, other_key, header + f"SYN-000010,Not a kettle {i},1,{quantity}\n")
    await eventually(lambda: on_hand(client, f"{other}:SYN-000010"), lambda v: v == 99_999, "B's own item")
    assert await on_hand(client, f"{demo}:SYN-000010") == 5
    assert (await client.get("/v1/stock/SYN-000010")).status_code == 404  # no bare SKU is stock

    await push(client, demo, demo_key, header + "SYN-000010,Demo kettle,10,7\n")  # demo's own feed counts
    await eventually(lambda: on_hand(client, f"{demo}:SYN-000010"), lambda v: v == 7, "demo's restock")


async def test_a_myntra_row_with_a_demo_sku_leaves_demo_stock_alone(
    client: AsyncTestClient[Litestar],
) -> None:
    demo, demo_key = await new_supplier(client, "demo")
    myntra, myntra_key = await new_supplier(client, "myntra")
    await push(client, demo, demo_key, "sku,title,price,stock.wh-north\nMYN-10017413,Demo bag,10,5\n")
    await eventually(lambda: on_hand(client, f"{demo}:MYN-10017413"), lambda v: v == 5, "demo's stock")
    myntra_csv = (
        "ProductID,ProductName,ProductBrand,Gender,Price (INR),NumImages,Description,PrimaryColor\n"
        "10017413,DKNY Unisex Black Trolley Bag,DKNY,Unisex,11745,7,A bag,Black\n"
    )
    await push(client, myntra, myntra_key, myntra_csv, profile="myntra", default_stock=3)
    await eventually(lambda: on_hand(client, f"{myntra}:MYN-10017413"), lambda v: v == 3, "myntra's stock")
    assert await on_hand(client, f"{demo}:MYN-10017413") == 5


async def test_stock_feed_sets_warehouse_stock_and_reports_each_line(
    client: AsyncTestClient[Litestar],
) -> None:
    supplier, key = await new_supplier(client)
    other, _ = await new_supplier(client)
    body = (
        "sku,warehouse,quantity\n"
        "ST-1,wh-north,4\n"
        "ST-1,wh-south,6\n"
        "ST-2,wh-east,not-a-number\n"
        ",wh-east,1\n"
        "ST-3,wh-east,-2\n"
        "ST-1,wh-north,9\n"
        "ST-4,,3\n"
        "ST-5,wh-east,2\n"
    )
    r = await client.post(f"/v1/suppliers/{supplier}/stock", content=body.encode(), headers={**key, **CSV})
    assert r.status_code == 201, r.text
    report = r.json()
    assert (report["accepted"], report["rejected"], report["changed"], report["unchanged"]) == (3, 5, 3, 0)
    assert [e["line"] for e in report["errors"]] == [4, 5, 6, 7, 8]
    assert "quantity" in report["errors"][0]["reason"]
    assert "duplicate" in report["errors"][3]["reason"] and "line 2" in report["errors"][3]["reason"]
    stock = (await client.get(f"/v1/stock/{supplier}:ST-1")).json()  # no catalog needed, and at once
    assert (stock["on_hand"], stock["warehouses"]) == (10, {"wh-north": 4, "wh-south": 6})
    assert (await client.get(f"/v1/stock/{supplier}:ST-5")).json()["available"] == 2

    again = await client.post(
        f"/v1/suppliers/{supplier}/stock",
        content=b'{"sku": "ST-1", "warehouse": "wh-south", "quantity": 6}\n'
        b'{"sku": "ST-1", "warehouse": "wh-east", "quantity": 1}\n',
        headers={**key, "Content-Type": "application/x-ndjson"},
    )
    assert again.status_code == 201, again.text
    assert (again.json()["accepted"], again.json()["unchanged"], again.json()["changed"]) == (2, 1, 1)
    stock = (await client.get(f"/v1/stock/{supplier}:ST-1")).json()
    assert (stock["on_hand"], stock["warehouses"]) == (11, {"wh-east": 1, "wh-north": 4, "wh-south": 6})
    report_url = again.headers["location"]
    assert (await client.get(report_url, headers=key)).json()["feed_id"] == again.json()["feed_id"]

    assert (await client.post(f"/v1/suppliers/{supplier}/stock", content=body.encode())).status_code == 401
    denied = await client.post(f"/v1/suppliers/{other}/stock", content=body.encode(), headers={**key, **CSV})
    assert denied.status_code == 403
    no_columns = await client.post(
        f"/v1/suppliers/{supplier}/stock", content=b"sku,qty\nA,1\n", headers={**key, **CSV}
    )
    assert no_columns.status_code == 422 and "warehouse" in no_columns.json()["detail"]


async def test_put_below_held_plus_sold_is_refused_with_409(client: AsyncTestClient[Litestar]) -> None:
    sku = f"admin:{uuid.uuid4().hex[:8]}"
    assert (await client.put(f"/v1/stock/{sku}", json={"on_hand": 10}, headers=BEARER)).status_code == 200
    shop = await new_storefront(client)
    sold = await client.post(
        "/v1/reservations", json={"sku": sku, "quantity": 4, "customer_id": "ann"}, headers=shop
    )
    assert sold.status_code == 201, sold.text
    confirm = await client.post(f"/v1/reservations/{sold.json()['reservation_id']}/confirm", headers=shop)
    assert confirm.status_code == 200
    held = await client.post(
        "/v1/reservations", json={"sku": sku, "quantity": 3, "customer_id": "bob"}, headers=shop
    )
    assert held.status_code == 201

    refused = await client.put(f"/v1/stock/{sku}", json={"on_hand": 6}, headers=BEARER)
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert "held" in body["detail"] and "sold" in body["detail"]
    assert body["extra"] == {"sku": sku, "on_hand": 6, "held": 3, "sold": 4}
    stock = (await client.get(f"/v1/stock/{sku}")).json()
    assert (stock["on_hand"], stock["held"], stock["sold"], stock["available"]) == (10, 3, 4, 3)
    ok = (await client.put(f"/v1/stock/{sku}", json={"on_hand": 7}, headers=BEARER)).json()
    assert ok["available"] + ok["held"] + ok["sold"] == ok["on_hand"] == 7
    bare = await client.put("/v1/stock/NO-SUPPLIER", json={"on_hand": 1}, headers=BEARER)
    assert bare.status_code == 422 and "<supplier_id>:<sku>" in bare.json()["detail"]


async def test_warehouses_sum_to_on_hand_after_an_admin_restock(client: AsyncTestClient[Litestar]) -> None:
    supplier, key = await new_supplier(client)
    await push(client, supplier, key, "sku,title,price,stock.wh-north,stock.wh-south\nW-1,Lamp,10,3,2\n")
    sku = f"{supplier}:W-1"
    await eventually(lambda: on_hand(client, sku), lambda v: v == 5, "feed stock")

    restock = await client.put(
        f"/v1/stock/{sku}", json={"warehouses": {"wh-north": 30, "wh-south": 20}}, headers=BEARER
    )
    assert restock.status_code == 200, restock.text
    assert (restock.json()["on_hand"], restock.json()["warehouses"]) == (50, {"wh-north": 30, "wh-south": 20})
    # a bare on_hand would leave the breakdown stale: refused, saying what to send
    stale = await client.put(f"/v1/stock/{sku}", json={"on_hand": 80}, headers=BEARER)
    assert stale.status_code == 409 and "warehouses" in stale.json()["detail"], stale.text
    same = await client.put(f"/v1/stock/{sku}", json={"on_hand": 50, "per_customer_limit": 2}, headers=BEARER)
    assert same.status_code == 200 and same.json()["per_customer_limit"] == 2
    mismatch = await client.put(
        f"/v1/stock/{sku}", json={"on_hand": 3, "warehouses": {"wh-north": 1}}, headers=BEARER
    )
    assert mismatch.status_code == 422
    stock = (await client.get(f"/v1/stock/{sku}")).json()
    assert sum(stock["warehouses"].values()) == stock["on_hand"] == 50


async def test_no_stock_record_is_out_of_stock_everywhere(client: AsyncTestClient[Litestar]) -> None:
    supplier, key = await new_supplier(client)
    await push(client, supplier, key, "sku,title,price\nNOSTOCK-1,Zyzzyva stockless widget,10\n")
    product = f"/v1/products/{supplier}:NOSTOCK-1"
    page = await eventually(lambda: client.get(product), lambda r: r.status_code == 200, "indexed")
    assert page.json()["in_stock"] is False and page.json()["sku"] == f"{supplier}:NOSTOCK-1"
    hits = (await client.get("/v1/search", params={"q": "zyzzyva", "in_stock": "false"})).json()["hits"]
    assert [(h["sku"], h["in_stock"]) for h in hits] == [(f"{supplier}:NOSTOCK-1", False)]
    assert (await client.get("/v1/search", params={"q": "zyzzyva"})).json()["hits"] == []
    assert (await client.get(f"/v1/stock/{supplier}:NOSTOCK-1")).status_code == 404


@pytest.mark.slow
async def test_bigbasket_with_default_stock_is_searchable_buyable_and_sells_out(
    tmp_path: Path,
    embedded_settings: Callable[..., Settings],
    served_app: Callable[[Litestar], AbstractAsyncContextManager[str]],
) -> None:
    """The new user's path over a real socket: import bigbasket with a default stock, search, reserve the
    hit by the ``sku`` it shows, and see it vanish from search when sold out."""
    lines = (DATASETS / "bigbasket_products.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    feed = "".join(lines[:201]).encode()
    app = create_app(embedded_settings(tmp_path / "data", admin_token=ADMIN))
    async with served_app(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        supplier, key = await new_supplier(http, "bigbasket")
        r = await http.post(
            f"/v1/suppliers/{supplier}/feeds",
            params={"profile": "bigbasket", "default_stock": 2},
            content=feed,
            headers={**key, **CSV},
        )
        assert r.status_code == 201 and r.json()["accepted"] == 200, r.text

        async def search() -> list[dict[str, Any]]:
            found = await http.get("/v1/search", params={"q": "garlic oil capsule", "size": 5})
            hits: list[dict[str, Any]] = found.json()["hits"]
            return hits

        hits = await eventually(search, lambda h: any(x["product_id"] == f"{supplier}:1" for x in h), "hit")
        hit = next(h for h in hits if h["product_id"] == f"{supplier}:1")
        assert hit["in_stock"] is True and hit["sku"] == f"{supplier}:BB-1"
        stock = (await http.get(f"/v1/stock/{hit['sku']}")).json()
        assert (stock["available"], stock["warehouses"]) == (2, {"main": 2})

        shop = await new_storefront(http)
        reserved = await http.post(
            "/v1/reservations",
            json={"sku": hit["sku"], "quantity": 2, "customer_id": "new-user"},
            headers=shop,
        )
        assert reserved.status_code == 201, reserved.text
        confirmed = await http.post(
            f"/v1/reservations/{reserved.json()['reservation_id']}/confirm", headers=shop
        )
        assert confirmed.status_code == 200
        await eventually(
            search, lambda h: all(x["product_id"] != f"{supplier}:1" for x in h), "sold out, gone from search"
        )
        product = (await http.get(f"/v1/products/{supplier}:1")).json()
        assert product["in_stock"] is False
