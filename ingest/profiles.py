"""Mapping profiles: a supplier's columns -> a canonical product draft (see ``validation``).

A profile is data (required columns, defaults) plus one small ``map`` function. It only renames
and reshapes; every constraint is checked once, for all profiles, in ``validation.validate``.
Product ids are always ``<supplier_id>:<ref>`` (added by validation), so whatever a feed says it
can only ever name products of the supplier that sends it.

Built-in profiles:

``canonical``
    The canonical field names, as CSV columns, NDJSON lines or JSON array objects: ``sku``,
    ``title``, ``price`` (required), ``product_id`` (the supplier's ref; defaults to ``sku``; a
    ``<supplier_id>:`` prefix is accepted and stripped), ``description``, ``brand``,
    ``category_path`` (a list, or a string ``"A > B > C"``), ``list_price``, ``currency`` (default
    INR), ``rating``, ``image_url``, ``attributes`` (object, or ``attr.<name>`` columns) and
    ``stock`` (object ``{warehouse: qty}``, or ``stock.<warehouse>`` columns; empty cells skipped).
    A ``supplier_id`` field, when given, must equal the supplier sending the feed.

``bigbasket``
    ``index`` is the ref (sku ``BB-<index>``), ``product`` the title, ``brand`` (trailing spaces
    trimmed), ``sale_price`` the price and ``market_price`` the list price (INR), category path
    ``category > sub_category > type``, ``rating`` when not blank. Unnamed trailing columns of the
    export are ignored.

``myntra``
    ``ProductID`` is the ref (sku ``MYN-<ProductID>``), ``ProductName`` the title, ``ProductBrand``,
    ``Price (INR)``, ``Description``; attributes ``gender``, ``color`` (``PrimaryColor``, when not
    blank) and ``num_images``. Category path ``Fashion > <Gender> > <product type>`` where the
    product type is the right-most word of the name found in ``MYNTRA_PRODUCT_TYPES`` (plural,
    title-cased label), else ``Other``.

``instacart``
    ``products.csv`` of the Instacart dataset: ``product_id`` is the ref (sku ``IC-<id>``),
    ``product_name`` the title; category path ``<department> > <aisle>`` looked up in
    ``departments.csv`` / ``aisles.csv`` next to the feed file (or from ``department`` / ``aisle``
    columns), the placeholder name ``missing`` dropped. Instacart publishes **no prices**, and a
    product without a price cannot be sold, so the price comes from a ``price`` column (currency
    from ``currency``, default USD) or from ``prices.csv`` (``product_id,price``) next to the feed;
    a product with neither is rejected with reason ``price: missing``. The public file therefore
    imports with every line rejected for that reason until prices are supplied.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ingest.parsing import FeedError
from ingest.validation import RowRejected

Draft = dict[str, Any]


class UnknownProfile(FeedError):
    status_code = 400


class Profile(Protocol):
    name: str

    def check_columns(self, columns: Sequence[str]) -> None:
        """Raise FeedError when a CSV header lacks a column this profile cannot do without."""
        ...

    def map(self, row: Mapping[str, Any]) -> Draft:
        """One feed row -> a product draft; raise RowRejected for a row that cannot be mapped."""
        ...


def _text(value: Any) -> str:
    if value.__class__ is str:
        return value.strip()
    return "" if value is None else str(value)


def _opt(value: Any) -> Any:
    """Blank CSV cells mean "not given"."""
    if value.__class__ is str:
        return value.strip() or None
    return value


def _require(columns: Sequence[str], required: Sequence[str], profile: str) -> None:
    missing = [c for c in required if c not in columns]
    if missing:
        raise FeedError(f"line 1: the {profile} profile needs column(s) {', '.join(missing)}")


# -- canonical --------------------------------------------------------------------------------


def _split_path(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(s.strip() for s in value.split(">") if s.strip())
    if isinstance(value, list | tuple):
        return tuple(_text(s) for s in value)  # a blank segment is rejected by validation
    raise RowRejected(f"category_path: expected a list or 'A > B' string, got {type(value).__name__}")


class CanonicalProfile:
    name = "canonical"

    def __init__(self, supplier_id: str) -> None:
        self._supplier_id = supplier_id
        self._prefix = f"{supplier_id}:"

    def check_columns(self, columns: Sequence[str]) -> None:
        _require(columns, ["sku", "title", "price"], self.name)

    def map(self, row: Mapping[str, Any]) -> Draft:
        supplier = _opt(row.get("supplier_id"))
        if supplier is not None and supplier != self._supplier_id:
            raise RowRejected(
                f"supplier_id: {supplier!r} does not match the feed's supplier {self._supplier_id!r}"
            )
        sku = _text(row.get("sku"))
        ref = _text(row.get("product_id")) or sku
        if ref.startswith(self._prefix):
            ref = ref[len(self._prefix) :]
        draft: Draft = {
            "ref": ref,
            "sku": sku,
            "title": _text(row.get("title")),
            "description": _text(row.get("description")),
            "brand": _text(row.get("brand")),
            "category_path": _split_path(_opt(row.get("category_path", row.get("category")))),
        }
        if "price" not in row:
            raise RowRejected("price: missing")
        draft["price"] = _opt(row["price"])
        if draft["price"] is None:
            raise RowRejected("price: missing")
        for key in ("list_price", "currency", "rating", "image_url"):
            value = _opt(row.get(key))
            if value is not None:
                draft[key] = value.upper() if key == "currency" and isinstance(value, str) else value
        attributes = row.get("attributes")
        stock = row.get("stock")
        if isinstance(attributes, dict):
            draft["attributes"] = {str(k): _text(v) for k, v in attributes.items()}
        elif attributes is not None and _opt(attributes) is not None:
            raise RowRejected("attributes: expected an object")
        if stock is not None and not isinstance(stock, dict) and _opt(stock) is not None:
            raise RowRejected("stock: expected an object {warehouse: quantity}")
        stock_map: dict[str, Any] = dict(stock) if isinstance(stock, dict) else {}
        attr_map: dict[str, str] = draft.get("attributes", {})
        for key, value in row.items():
            if key.startswith("stock."):
                if _opt(value) is not None:
                    stock_map[key[6:]] = _opt(value)
            elif key.startswith(("attr.", "attributes.")):
                if _opt(value) is not None:
                    attr_map[key.split(".", 1)[1]] = _text(value)
        if stock_map:
            draft["stock"] = stock_map
        if attr_map:
            draft["attributes"] = attr_map
        return draft


# -- bigbasket --------------------------------------------------------------------------------


class BigBasketProfile:
    name = "bigbasket"

    def check_columns(self, columns: Sequence[str]) -> None:
        _require(columns, ["index", "product", "sale_price"], self.name)

    def map(self, row: Mapping[str, Any]) -> Draft:
        get = row.get
        ref = _text(get("index"))
        price = _opt(get("sale_price"))
        if price is None:
            raise RowRejected("sale_price: missing")
        draft: Draft = {
            "ref": ref,
            "sku": f"BB-{ref}" if ref else "",
            "title": _text(get("product")),
            "brand": _text(get("brand")),
            "category_path": tuple(
                [s for s in (_text(get("category")), _text(get("sub_category")), _text(get("type"))) if s]
            ),
            "price": price,
            "currency": "INR",
        }
        list_price = _opt(get("market_price"))
        if list_price is not None:
            draft["list_price"] = list_price
        rating = _opt(get("rating"))
        if rating is not None:
            draft["rating"] = rating
        return draft


# -- myntra -----------------------------------------------------------------------------------

# Lower-cased name word -> product type label. Covers the nouns myntra names end with.
MYNTRA_PRODUCT_TYPES: dict[str, str] = {
    **{w: "Shirts" for w in ("shirt", "shirts")},
    **{w: "T-Shirts" for w in ("t-shirt", "t-shirts", "tshirt", "tee", "tees")},
    **{w: "Jeans" for w in ("jeans", "jeggings")},
    **{w: "Kurtas" for w in ("kurta", "kurtas", "kurti", "kurtis", "tunic", "tunics")},
    **{w: "Tops" for w in ("top", "tops", "camisole", "shrug", "crop")},
    **{w: "Dresses" for w in ("dress", "dresses", "jumpsuit", "playsuit")},
    **{
        w: "Trousers"
        for w in (
            "trousers",
            "pants",
            "chinos",
            "cargos",
            "joggers",
            "palazzos",
            "leggings",
            "tights",
            "churidar",
            "track",
        )
    },
    **{w: "Shorts" for w in ("shorts",)},
    **{w: "Skirts" for w in ("skirt", "skirts")},
    **{w: "Jackets" for w in ("jacket", "jackets", "blazer", "blazers", "coat", "suit", "waistcoat")},
    **{
        w: "Sweaters"
        for w in ("sweater", "sweaters", "sweatshirt", "sweatshirts", "cardigan", "pullover", "hoodie")
    },
    **{w: "Ethnic Wear" for w in ("saree", "sarees", "dupatta", "lehenga", "sherwani", "salwar")},
    **{
        w: "Shoes"
        for w in (
            "shoes",
            "sneakers",
            "loafers",
            "derbys",
            "boots",
            "slip-ons",
            "brogues",
            "oxfords",
            "mules",
        )
    },
    **{
        w: "Sandals & Flats"
        for w in ("sandals", "flats", "flip-flops", "sliders", "heels", "pumps", "wedges", "ballerinas")
    },
    **{
        w: "Bags"
        for w in ("bag", "bags", "backpack", "handbag", "clutch", "tote", "wallet", "trolley", "duffel")
    },
    **{
        w: "Jewellery"
        for w in (
            "earrings",
            "necklace",
            "jhumkas",
            "ring",
            "bracelet",
            "studs",
            "bangles",
            "pendant",
            "anklet",
            "cufflinks",
        )
    },
    **{
        w: "Accessories"
        for w in ("belt", "cap", "scarf", "stole", "socks", "watch", "sunglasses", "tie", "gloves", "muffler")
    },
    **{
        w: "Innerwear & Sleepwear"
        for w in (
            "bra",
            "bras",
            "briefs",
            "trunks",
            "boxers",
            "pyjamas",
            "nightdress",
            "vest",
            "lounge",
            "panties",
        )
    },
    **{
        w: "Home"
        for w in (
            "curtains",
            "curtain",
            "covers",
            "cover",
            "mug",
            "placemats",
            "placemat",
            "runner",
            "carpet",
            "rug",
            "pot",
            "bin",
            "bedsheet",
            "cushion",
            "towel",
            "shade",
            "holder",
            "lamp",
            "clock",
        )
    },
    **{w: "Beauty" for w in ("perfume", "deodorant", "lipstick", "ml", "7ml", "g", "nail", "kajal")},
}
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


def myntra_product_type(name: str) -> str:
    """Right-most word of the name that names a product type; ``Other`` when none does."""
    for word in reversed(_WORD.findall(name)):
        label = MYNTRA_PRODUCT_TYPES.get(word.lower())
        if label is not None:
            return label
    return "Other"


class MyntraProfile:
    name = "myntra"

    def check_columns(self, columns: Sequence[str]) -> None:
        _require(columns, ["ProductID", "ProductName", "Price (INR)"], self.name)

    def map(self, row: Mapping[str, Any]) -> Draft:
        ref = _text(row.get("ProductID"))
        title = _text(row.get("ProductName"))
        gender = _text(row.get("Gender"))
        price = _opt(row.get("Price (INR)"))
        if price is None:
            raise RowRejected("Price (INR): missing")
        attributes: dict[str, str] = {}
        if gender:
            attributes["gender"] = gender
        color = _text(row.get("PrimaryColor"))
        if color:
            attributes["color"] = color
        images = _text(row.get("NumImages"))
        if images:
            attributes["num_images"] = images
        return {
            "ref": ref,
            "sku": f"MYN-{ref}" if ref else "",
            "title": title,
            "description": _text(row.get("Description")),
            "brand": _text(row.get("ProductBrand")),
            "category_path": tuple(s for s in ("Fashion", gender, myntra_product_type(title)) if s),
            "price": price,
            "currency": "INR",
            "attributes": attributes,
        }


# -- instacart --------------------------------------------------------------------------------


def _load_lookup(path: Path, key: str, value: str) -> dict[str, str]:
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as fh:
        return {r[key].strip(): r[value].strip() for r in csv.DictReader(fh) if r.get(key)}


class InstacartProfile:
    name = "instacart"
    MISSING = "missing"  # the dataset's own placeholder department / aisle name

    def __init__(self, source_dir: Path | None = None) -> None:
        self.aisles: dict[str, str] = {}
        self.departments: dict[str, str] = {}
        self.prices: dict[str, str] = {}
        if source_dir is not None:
            self.aisles = _load_lookup(source_dir / "aisles.csv", "aisle_id", "aisle")
            self.departments = _load_lookup(source_dir / "departments.csv", "department_id", "department")
            self.prices = _load_lookup(source_dir / "prices.csv", "product_id", "price")

    def check_columns(self, columns: Sequence[str]) -> None:
        _require(columns, ["product_id", "product_name"], self.name)

    def _name(self, row: Mapping[str, Any], name_key: str, id_key: str, table: dict[str, str]) -> str:
        name = _text(row.get(name_key)) or table.get(_text(row.get(id_key)), "")
        return "" if name.lower() == self.MISSING else name.title()

    def map(self, row: Mapping[str, Any]) -> Draft:
        ref = _text(row.get("product_id"))
        price = _opt(row.get("price"))
        if price is None:
            price = self.prices.get(ref)
        if price is None:
            raise RowRejected(
                "price: missing (instacart products carry no price; add a price column or prices.csv)"
            )
        department = self._name(row, "department", "department_id", self.departments)
        aisle = self._name(row, "aisle", "aisle_id", self.aisles)
        attributes = {k: _text(row[k]) for k in ("aisle_id", "department_id") if _opt(row.get(k)) is not None}
        return {
            "ref": ref,
            "sku": f"IC-{ref}" if ref else "",
            "title": _text(row.get("product_name")),
            "category_path": tuple(s for s in (department, aisle) if s),
            "price": price,
            "currency": (_opt(row.get("currency")) or "USD").upper(),
            "attributes": attributes,
        }


# -- registry ---------------------------------------------------------------------------------

PROFILE_NAMES = ("canonical", "bigbasket", "myntra", "instacart")

_FACTORIES: dict[str, Callable[[str, Path | None], Profile]] = {
    "canonical": lambda supplier_id, _dir: CanonicalProfile(supplier_id),
    "bigbasket": lambda _supplier_id, _dir: BigBasketProfile(),
    "myntra": lambda _supplier_id, _dir: MyntraProfile(),
    "instacart": lambda _supplier_id, source_dir: InstacartProfile(source_dir),
}


def get_profile(name: str, supplier_id: str, *, source_dir: Path | None = None) -> Profile:
    """``source_dir`` is the folder of a feed file; profiles with side files (instacart) read it."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise UnknownProfile(f"unknown profile {name!r}; built-in profiles: {', '.join(PROFILE_NAMES)}")
    return factory(supplier_id, source_dir)
