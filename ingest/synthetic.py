"""Deterministic synthetic catalog: the demo's data, so the product runs without ../shared.

Same seed and count -> byte-identical feed, which is what makes re-running the demo publish
nothing. Products look like a general online store: department > category > type paths, brands
per department, titles with variants and sizes, prices that end like real prices, ratings, and
stock in three warehouses (some products out of stock everywhere, some held in one warehouse).
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

WAREHOUSES = ("wh-north", "wh-south", "wh-east")

# department -> category -> (product types, price range INR)
_CATALOG: dict[str, dict[str, tuple[tuple[str, ...], tuple[int, int]]]] = {
    "Grocery": {
        "Staples": (
            ("Basmati Rice", "Toor Dal", "Whole Wheat Atta", "Sunflower Oil", "Rock Salt"),
            (45, 900),
        ),
        "Beverages": (("Green Tea", "Instant Coffee", "Mango Juice", "Masala Chai", "Cold Brew"), (60, 650)),
        "Snacks": (
            ("Potato Chips", "Roasted Almonds", "Oat Cookies", "Dark Chocolate", "Trail Mix"),
            (20, 480),
        ),
        "Dairy": (("Paneer", "Greek Yogurt", "Cheddar Cheese", "Salted Butter", "Toned Milk"), (25, 520)),
    },
    "Home & Kitchen": {
        "Cookware": (
            ("Non-Stick Frying Pan", "Pressure Cooker", "Cast Iron Skillet", "Steel Kadai"),
            (399, 4500),
        ),
        "Storage": (("Glass Jar Set", "Lunch Box", "Water Bottle", "Spice Rack"), (149, 1800)),
        "Cleaning": (("Floor Cleaner", "Dishwash Gel", "Microfiber Cloth", "Toilet Cleaner"), (49, 699)),
        "Decor": (("Scented Candle", "Cushion Cover", "Wall Clock", "Table Lamp"), (199, 3500)),
    },
    "Fashion": {
        "Men": (
            ("Cotton Shirt", "Slim Fit Jeans", "Polo T-Shirt", "Running Shoes", "Leather Belt"),
            (299, 4999),
        ),
        "Women": (("Printed Kurta", "Maxi Dress", "Denim Jacket", "Block Heels", "Tote Bag"), (349, 5999)),
        "Kids": (("Graphic T-Shirt", "Jogger Pants", "School Backpack", "Canvas Sneakers"), (199, 1999)),
    },
    "Electronics": {
        "Audio": (("Wireless Earbuds", "Bluetooth Speaker", "Over-Ear Headphones", "Soundbar"), (799, 24999)),
        "Accessories": (
            ("USB-C Charger", "Power Bank", "Phone Case", "HDMI Cable", "Wireless Mouse"),
            (199, 3999),
        ),
        "Appliances": (("Electric Kettle", "Mixer Grinder", "Air Fryer", "Steam Iron"), (899, 12999)),
    },
    "Beauty & Personal Care": {
        "Skin Care": (("Face Wash", "Sunscreen SPF 50", "Night Cream", "Aloe Vera Gel"), (99, 1499)),
        "Hair Care": (("Herbal Shampoo", "Hair Oil", "Conditioner", "Hair Serum"), (89, 999)),
        "Bath": (("Body Wash", "Bathing Bar", "Hand Wash", "Bath Salts"), (35, 699)),
    },
}

_BRANDS: dict[str, tuple[str, ...]] = {
    "Grocery": ("Fresho", "Daily Harvest", "Tata Sampann", "Organic Tattva", "Nutty Gritties", "Amul"),
    "Home & Kitchen": ("Prestige", "Borosil", "Cello", "Milton", "Home Centre", "Solimo"),
    "Fashion": ("Roadster", "HRX", "Levis", "W", "Biba", "Puma", "H&M"),
    "Electronics": ("boAt", "JBL", "Philips", "Ambrane", "Portronics", "Bajaj"),
    "Beauty & Personal Care": ("Himalaya", "Mamaearth", "Biotique", "Nivea", "Dove", "Plum"),
}
_ADJECTIVES = (
    "Classic",
    "Premium",
    "Everyday",
    "Organic",
    "Ultra",
    "Eco",
    "Pro",
    "Essential",
    "Deluxe",
    "Fresh",
)
_VARIANTS = ("Pack of 2", "Family Pack", "Assorted", "Limited Edition", "Value Pack", "Travel Size", "")
_COLORS = ("Black", "White", "Blue", "Red", "Green", "Grey", "Beige", "Pink", "Navy", "Olive")
_SIZES = {
    "Grocery": ("200 g", "500 g", "1 kg", "5 kg", "250 ml", "1 L"),
    "Beauty & Personal Care": ("50 ml", "100 ml", "200 ml", "75 g", "150 g"),
    "Fashion": ("S", "M", "L", "XL", "28", "32", "UK 8", "UK 9"),
}
_PRAISE = (
    "Loved by thousands of customers.",
    "Made with carefully selected materials.",
    "Great value for everyday use.",
    "Designed to last.",
    "A customer favourite this season.",
    "Backed by a one-year warranty.",
    "Sourced responsibly.",
)

COLUMNS = (
    "product_id",
    "sku",
    "title",
    "description",
    "brand",
    "category_path",
    "price",
    "list_price",
    "currency",
    "rating",
    "image_url",
    *(f"stock.{w}" for w in WAREHOUSES),
    "attr.color",
    "attr.size",
)


def _price(rng: random.Random, low: int, high: int) -> Decimal:
    base = rng.uniform(low, high)
    ending = rng.choice((Decimal("0.00"), Decimal("0.50"), Decimal("0.99"), Decimal("0.00")))
    return Decimal(int(base)) + ending


def generate_products(count: int, *, seed: int = 42) -> Iterator[dict[str, Any]]:
    """``count`` canonical product dicts, deterministic for a seed."""
    rng = random.Random(seed)
    departments = sorted(_CATALOG)
    for n in range(1, count + 1):
        department = rng.choice(departments)
        category = rng.choice(sorted(_CATALOG[department]))
        types, (low, high) = _CATALOG[department][category]
        ptype = rng.choice(types)
        brand = rng.choice(_BRANDS[department])
        adjective = rng.choice(_ADJECTIVES)
        variant = rng.choice(_VARIANTS)
        color = rng.choice(_COLORS) if department in ("Fashion", "Home & Kitchen", "Electronics") else ""
        size = rng.choice(_SIZES[department]) if department in _SIZES else ""
        title = " ".join(p for p in (brand, adjective, color, ptype) if p)
        if variant:
            title += f" - {variant}"
        if size:
            title += f", {size}"
        price = _price(rng, low, high)
        discount = rng.choice((0, 0, 0, 5, 10, 15, 20, 30))
        list_price = (price * 100 / (100 - discount)).quantize(Decimal("1")) if discount else price
        rating = round(rng.uniform(2.5, 5.0), 1) if rng.random() > 0.1 else None
        stock_roll = rng.random()
        if stock_roll < 0.05:
            stock = dict.fromkeys(WAREHOUSES, 0)  # out of stock everywhere
        elif stock_roll < 0.25:
            stock = {w: 0 for w in WAREHOUSES} | {rng.choice(WAREHOUSES): rng.randint(1, 40)}
        else:
            stock = {w: rng.randint(0, 250) for w in WAREHOUSES}
        description = (
            f"{adjective} {ptype.lower()} from {brand}. "
            f"{rng.choice(_PRAISE)} {rng.choice(_PRAISE)} Category: {category.lower()}."
        )
        ref = f"SYN-{n:06d}"
        yield {
            "product_id": ref,
            "sku": ref,
            "title": title,
            "description": description,
            "brand": brand,
            "category_path": [department, category, ptype],
            "price": price,
            "list_price": list_price,
            "currency": "INR",
            "rating": rating,
            "image_url": f"https://img.example.com/{ref.lower()}.jpg",
            "stock": stock,
            "attributes": {k: v for k, v in (("color", color), ("size", size)) if v},
        }


def write_csv_rows(fh: IO[str], products: Iterable[dict[str, Any]]) -> None:
    """Products (as ``generate_products`` makes them) as a canonical-profile CSV feed (``category_path``
    as ``A > B > C``, ``stock.<wh>`` columns)."""
    writer = csv.writer(fh)
    writer.writerow(COLUMNS)
    for p in products:
        writer.writerow(
            [
                p["product_id"],
                p["sku"],
                p["title"],
                p["description"],
                p["brand"],
                " > ".join(p["category_path"]),
                p["price"],
                p["list_price"],
                p["currency"],
                "" if p["rating"] is None else p["rating"],
                p["image_url"],
                *(p["stock"][w] for w in WAREHOUSES),
                p["attributes"].get("color", ""),
                p["attributes"].get("size", ""),
            ]
        )


def write_csv(path: Path, count: int, *, seed: int = 42) -> Path:
    """A canonical-profile CSV feed of ``count`` products (see ``write_csv_rows``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        write_csv_rows(fh, generate_products(count, seed=seed))
    tmp.replace(path)
    return path


def write_ndjson(path: Path, count: int, *, seed: int = 42) -> Path:
    """The same catalog as canonical NDJSON (objects for ``stock`` and ``attributes``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for p in generate_products(count, seed=seed):
            fh.write(json.dumps(p, default=str, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path
