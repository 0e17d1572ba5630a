"""Model quality on the two real datasets: ALS, bought-together and popularity side by side, on the
recommendations job's time-based holdout (precision@10, recall@10, MAP@10).

    python -m loadtest.bench_jobs_quality [--datasets ../shared/datasets] [--spark local[*]]

The history is turned into activity rows here, in the bench only (``analytics import-history`` is being
built beside the jobs; once merged it writes the same ``ACTIVITY_SCHEMA`` rows): every invoice/order
line becomes one purchase row. online_retail: cancellations (invoice ``C...``) and non-positive
quantities are left out; the customer is the user (lines without one are guests, their invoice the
session); the country is the region. instacart has no dates: each user's orders are laid on a timeline
from 2017-01-01 by ``days_since_prior_order`` and ``order_hour_of_day``; the department is the category.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pv

from analytics.jobs.lake import snapshot
from analytics.jobs.runner import JobParams, compute_job
from analytics.jobs.session import spark_session
from analytics.schema import ACTIVITY_SCHEMA
from analytics.synthetic import write_lake

DEFAULT_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _purchase(
    n: int, when: datetime, user: str | None, session: str, product: str, **extra: Any
) -> dict[str, Any]:
    return {
        "event_id": f"hist-{n}",
        "event_type": "purchase",
        "occurred_at": when,
        "user_id": user,
        "session_id": session,
        "product_id": product,
        "sku": product,
        "order_id": session,
        "source": "bench-history",
        **extra,
    }


def online_retail(path: Path) -> pa.Table:
    table = pv.read_csv(path, convert_options=pv.ConvertOptions(column_types={"CustomerID": pa.string()}))
    rows = []
    for n, line in enumerate(table.to_pylist()):
        invoice, quantity = str(line["InvoiceNo"]), int(line["Quantity"] or 0)
        if invoice.startswith("C") or quantity <= 0:
            continue
        customer = (line["CustomerID"] or "").split(".")[0] or None
        when = datetime.fromisoformat(str(line["InvoiceDate"])).replace(tzinfo=UTC)
        price = Decimal(str(line["UnitPrice"])).quantize(Decimal("0.01"))
        rows.append(
            _purchase(
                n,
                when,
                customer,
                invoice,
                str(line["StockCode"]),
                quantity=quantity,
                unit_price=price,
                currency="GBP",
                region=line["Country"],
                category="",
            )
        )
    return pa.Table.from_pylist(rows, schema=ACTIVITY_SCHEMA)


def instacart(folder: Path) -> pa.Table:
    orders = pv.read_csv(folder / "orders.csv").to_pylist()
    lines = pv.read_csv(folder / "order_products__prior.csv").to_pylist()
    products = {p["product_id"]: p for p in pv.read_csv(folder / "products.csv").to_pylist()}
    departments = {
        d["department_id"]: d["department"] for d in pv.read_csv(folder / "departments.csv").to_pylist()
    }
    start = datetime(2017, 1, 1, tzinfo=UTC)
    when_of: dict[Any, tuple[Any, datetime]] = {}
    day: dict[Any, int] = {}
    for order in sorted(orders, key=lambda o: (o["user_id"], o["order_number"])):
        user = order["user_id"]
        day[user] = day.get(user, 0) + int(order["days_since_prior_order"] or 0)
        when_of[order["order_id"]] = (
            user,
            start + timedelta(days=day[user], hours=int(order["order_hour_of_day"])),
        )
    rows = []
    for n, line in enumerate(lines):
        if line["order_id"] not in when_of:
            continue
        user, when = when_of[line["order_id"]]
        product = products.get(line["product_id"], {})
        rows.append(
            _purchase(
                n,
                when + timedelta(seconds=int(line["add_to_cart_order"])),
                str(user),
                str(line["order_id"]),
                str(line["product_id"]),
                quantity=1,
                category=departments.get(product.get("department_id"), ""),
            )
        )
    return pa.Table.from_pylist(rows, schema=ACTIVITY_SCHEMA)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument("--spark", default="local[*]")
    args = parser.parse_args()
    builders = {
        "online_retail": lambda: online_retail(args.datasets / "online_retail" / "online_retail_sample.csv"),
        "instacart": lambda: instacart(args.datasets / "instacart"),
    }
    spark = spark_session(args.spark, "bench-quality")
    results: dict[str, Any] = {}
    try:
        for name, build in builders.items():
            lake = Path(tempfile.mkdtemp(prefix=f"quality-{name}-"))
            table = build()
            write_lake(table, lake, name=name)
            snap = snapshot(str(lake))
            run = compute_job(
                lambda: spark, "recommendations", snap, JobParams(), lambda m: print(m, flush=True)
            )
            results[name] = {"rows": table.num_rows, **run.summary}
            print(json.dumps({name: results[name]}, indent=2), flush=True)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
