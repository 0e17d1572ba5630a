"""Storefront query corpus shared by the Locust scenario and the benchmarks (no Locust import here:
importing Locust monkey-patches the standard library with gevent).

Queries are drawn from the real catalogs in ``../shared/datasets`` (override with ``EMPORIUM_DATASETS_DIR``);
when they are absent a built-in list is used and a message says so.
"""

from __future__ import annotations

import csv
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
ZONES = ("DEL", "NCR", "MUM", "PUN", "BLR", "CHE", "HYD", "KOL", "NAG", "GUW")
SORTS = ("relevance", "price_asc", "price_desc", "rating", "newest")
BUILTIN_QUERIES = (
    "rice", "basmati rice", "green tea", "shampoo", "face wash", "olive oil", "chocolate", "biscuits",
    "coffee", "detergent", "toothpaste", "kurta", "jeans", "t-shirt", "sneakers", "saree", "watch",
    "handbag", "sunglasses", "dress", "shirt", "atta", "dal", "ghee", "honey", "masala", "noodles",
)  # fmt: skip
BUILTIN_BRANDS = ("Fresho", "bb Royal", "Amul", "Nivea", "Roadster", "HRX by Hrithik Roshan", "Puma")
BUILTIN_CATEGORIES = ("Beauty & Hygiene", "Foodgrains, Oil & Masala", "Snacks & Branded Foods")


@dataclass
class Corpus:
    queries: list[str] = field(default_factory=list)
    brands: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    source: str = "built-in"


def _clean(text: str) -> str:
    return " ".join(text.replace(",", " ").split())


def load_corpus(datasets: Path | None = None, *, limit: int = 20_000, seed: int = 7) -> Corpus:
    """Queries a shopper would type: 1-3 leading words of real product names, brands, categories."""
    datasets = datasets or Path(os.environ.get("EMPORIUM_DATASETS_DIR", DEFAULT_DATASETS))
    big, myn = datasets / "bigbasket_products.csv", datasets / "myntra_products.csv"
    if not (big.is_file() and myn.is_file()):
        print(f"storefront: {datasets} has no catalogs; using the built-in query list", file=sys.stderr)
        return Corpus(list(BUILTIN_QUERIES), list(BUILTIN_BRANDS), list(BUILTIN_CATEGORIES))
    rng = random.Random(seed)
    names: list[str] = []
    brands: set[str] = set()
    categories: set[str] = set()
    with big.open(newline="", encoding="utf-8", errors="replace") as fh:
        for row in csv.DictReader(fh):
            names.append(row.get("product") or "")
            brands.add(_clean(row.get("brand") or ""))
            if row.get("category"):
                categories.add(row["category"].strip())
    with myn.open(newline="", encoding="utf-8", errors="replace") as fh:
        for row in csv.DictReader(fh):
            name = row.get("ProductName") or ""
            brand = _clean(row.get("ProductBrand") or "")
            brands.add(brand)
            # Myntra names start with the brand: shoppers type what comes after it
            names.append(name[len(brand) :] if brand and name.startswith(brand) else name)
    queries: list[str] = []
    for name in rng.sample(names, min(limit, len(names))):
        words = [w for w in _clean(name).split() if w.isalpha() and len(w) > 2]
        if words:
            queries.append(" ".join(words[: rng.choice((1, 1, 2, 2, 3))]).lower())
    return Corpus(
        queries=queries,
        brands=sorted(b for b in brands if b),
        categories=sorted(categories),
        source=str(datasets),
    )


def typo(word: str, rng: random.Random) -> str:
    """One edit a hurried shopper makes: drop, double or swap a letter (never the first)."""
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
