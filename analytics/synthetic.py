"""Synthetic activity in ``ACTIVITY_SCHEMA``, written into a lake the way the archive lays it out.

Shared by the job tests and ``loadtest.bench_jobs``. Deterministic for a seed. Each user has a home
region and a favourite category; with probability ``affinity`` an action picks a product of that
category (a planted signal a recommender can learn), otherwise a globally popular one. Purchases of one
user on one day form one order (and one session), so baskets carry a co-purchase signal too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analytics.schema import ACTIVITY_SCHEMA, ACTIVITY_TABLE, EVENT_TYPES, partition_dir

#: Share of each event type, in the order of ``EVENT_TYPES`` (search, view, cart_add, purchase).
TYPE_SHARES = (0.2, 0.5, 0.15, 0.15)
REGIONS = ("BLR", "DEL", "MUM", "HYD")


@dataclass(frozen=True)
class SyntheticSpec:
    events: int = 10_000
    users: int = 500
    products: int = 400
    categories: int = 10
    days: int = 14
    affinity: float = 0.85  # chance an action stays in the user's favourite category
    end: datetime = datetime(2026, 11, 30, tzinfo=UTC)
    seed: int = 7


def product_id(n: int) -> str:
    return f"p{n:05d}"


def category_of(product: np.ndarray, categories: int) -> np.ndarray:
    return product % categories


def _pick_products(rng: np.random.Generator, spec: SyntheticSpec, fav: np.ndarray) -> np.ndarray:
    """A product per event: in the favourite category (Zipf-ranked within it) or globally (Zipf)."""
    n, per_cat = len(fav), spec.products // spec.categories
    in_cat_rank = (rng.zipf(1.3, n) - 1) % per_cat
    affine = fav + spec.categories * in_cat_rank
    global_pick = (rng.zipf(1.2, n) - 1) % spec.products
    return np.where(rng.random(n) < spec.affinity, affine, global_pick)


def generate(spec: SyntheticSpec) -> pa.Table:
    """``spec.events`` rows of activity, sorted by time."""
    rng = np.random.default_rng(spec.seed)
    n = spec.events
    user_fav = rng.integers(0, spec.categories, spec.users)
    user_region = rng.integers(0, len(REGIONS), spec.users)
    users = rng.integers(0, spec.users, n)
    span_us = spec.days * 86_400_000_000
    start_us = int(spec.end.timestamp() * 1_000_000) - span_us
    when = np.sort(rng.integers(0, span_us, n)) + start_us
    kinds = rng.choice(len(EVENT_TYPES), n, p=TYPE_SHARES)
    products = _pick_products(rng, spec, user_fav[users])
    cats = category_of(products, spec.categories)
    day = (when - start_us) // 86_400_000_000
    is_search, has_item = kinds == 0, kinds >= 2
    event_type = np.array(EVENT_TYPES, dtype=object)[kinds]
    user_ids = np.char.add("u", users.astype(str)).astype(object)
    sessions = np.char.add(np.char.add(user_ids.astype(str), "-"), day.astype(str)).astype(object)
    pid = np.char.add("p", np.char.zfill(products.astype(str), 5)).astype(object)
    cat_names = np.char.add("category-", cats.astype(str)).astype(object)
    brand = np.char.add("brand-", (products % 7).astype(str)).astype(object)
    query = np.char.add(
        np.char.add("cat ", cats.astype(str)), np.where(products % 3 == 0, " deal", "")
    ).astype(object)
    cents = 100 + (products * 37) % 5000
    none = np.full(n, None, dtype=object)
    columns = {
        "event_id": pa.array([f"syn-{spec.seed}-{i}" for i in range(n)], pa.string()),
        "event_type": pa.array(event_type, pa.string()),
        "occurred_at": pa.array(when, pa.timestamp("us", tz="UTC")),
        "user_id": pa.array(user_ids, pa.string()),
        "session_id": pa.array(sessions, pa.string()),
        "region": pa.array(np.array(REGIONS, dtype=object)[user_region[users]], pa.string()),
        "query": pa.array(np.where(is_search, query, none), pa.string()),
        "product_id": pa.array(np.where(is_search, none, pid), pa.string()),
        "sku": pa.array(
            np.where(has_item, np.char.add("s1:", pid.astype(str)).astype(object), none), pa.string()
        ),
        "quantity": pa.array(1 + products % 3, pa.int32(), mask=~has_item),
        "unit_price": pa.array(
            [Decimal(int(c)).scaleb(-2) if item else None for c, item in zip(cents, has_item, strict=True)],
            pa.decimal128(18, 2),
        ),
        "currency": pa.array(np.full(n, "INR", dtype=object), pa.string()),
        "category": pa.array(np.where(is_search, none, cat_names), pa.string()),
        "brand": pa.array(np.where(is_search, none, brand), pa.string()),
        "order_id": pa.array(
            np.where(kinds == 3, np.char.add("o-", sessions.astype(str)), none), pa.string()
        ),
        "source": pa.array(np.full(n, "synthetic", dtype=object), pa.string()),
    }
    return pa.table(columns).cast(ACTIVITY_SCHEMA)


def write_lake(table: pa.Table, lake: Path, *, name: str = "synthetic") -> list[Path]:
    """Write ``table`` under ``<lake>/activity/date=/hour=/<name>.parquet``, one file per hour."""
    base = lake / ACTIVITY_TABLE
    hours = pc.floor_temporal(table["occurred_at"], unit="hour")
    written: list[Path] = []
    for hour in pc.unique(hours).to_pylist():
        part = table.filter(pc.equal(hours, pa.scalar(hour, hours.type)))
        folder = base / partition_dir(hour)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.parquet"
        pq.write_table(part, path)
        written.append(path)
    return written


def write_synthetic_lake(lake: Path, spec: SyntheticSpec | None = None) -> pa.Table:
    table = generate(spec or SyntheticSpec())
    write_lake(table, lake)
    return table


def window_end(spec: SyntheticSpec) -> datetime:
    return spec.end - timedelta(microseconds=1)
