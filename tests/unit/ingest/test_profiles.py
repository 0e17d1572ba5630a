"""Mapping profiles and the validation gate (pure functions)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ingest.parsing import FeedError
from ingest.profiles import UnknownProfile, get_profile, myntra_product_type
from ingest.validation import RowRejected, validate


def product(profile: str, row: dict, supplier: str = "acme", source_dir: Path | None = None):
    return validate(get_profile(profile, supplier, source_dir=source_dir).map(row), supplier)


def test_canonical_csv_row_with_stock_and_attribute_columns() -> None:
    p = product(
        "canonical",
        {
            "product_id": "acme:P1",
            "sku": "SKU-1",
            "title": " Tea ",
            "price": "10.50",
            "list_price": "12",
            "currency": "usd",
            "category_path": "Grocery > Beverages >  Tea",
            "rating": "4.5",
            "stock.wh-north": "3",
            "stock.wh-south": "",
            "attr.color": "green",
            "brand": "Leafy",
        },
    )
    assert (
        p.product_id == "acme:P1" and p.supplier_id == "acme" and p.sku == "acme:SKU-1" and p.title == "Tea"
    )
    assert p.price == Decimal("10.50") and p.list_price == Decimal("12") and p.currency == "USD"
    assert p.category_path == ("Grocery", "Beverages", "Tea")
    assert p.stock == {"wh-north": 3} and p.attributes == {"color": "green"} and p.rating == 4.5


def test_canonical_json_objects_and_defaults() -> None:
    p = product(
        "canonical",
        {
            "sku": "S",
            "title": "T",
            "price": 3,
            "category_path": ["A", "B"],
            "stock": {"w1": 0},
            "attributes": {"size": "M"},
        },
    )
    assert p.product_id == "acme:S" and p.currency == "INR" and p.stock == {"w1": 0}
    assert p.category_path == ("A", "B") and p.attributes == {"size": "M"}


def test_a_supplier_cannot_name_another_suppliers_product() -> None:
    # A foreign prefix stays inside the sender's namespace; an explicit supplier_id must match.
    assert product(
        "canonical", {"product_id": "other:X", "sku": "X", "title": "t", "price": "1"}
    ).product_id == ("acme:other:X")
    with pytest.raises(RowRejected, match="does not match"):
        product("canonical", {"supplier_id": "other", "sku": "X", "title": "t", "price": "1"})


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"sku": "S", "title": "", "price": "1"}, "title: expected `str` of length >= 1"),
        ({"sku": "", "title": "t", "price": "1"}, "ref: expected `str` of length >= 1"),
        ({"sku": "S", "title": "t", "price": "abc"}, "price: invalid decimal"),
        ({"sku": "S", "title": "t", "price": "-1"}, "price: must be >= 0"),
        ({"sku": "S", "title": "t", "price": "NaN"}, "price: must be a finite number"),
        ({"sku": "S", "title": "t"}, "price: missing"),
        ({"sku": "S", "title": "t", "price": ""}, "price: missing"),
        (
            {"sku": "S", "title": "t", "price": "1", "currency": "rupees"},
            "currency: expected `str` of length <= 3",
        ),
        ({"sku": "S", "title": "t", "price": "1", "currency": "R$1"}, "currency: expected a 3-letter"),
        ({"sku": "S", "title": "t", "price": "1", "category_path": ["A", " "]}, "category_path[1]: expected"),
        ({"sku": "S", "title": "t", "price": "1", "rating": "7"}, "rating: expected `float` <= 5"),
        ({"sku": "S", "title": "t", "price": "1", "stock.w": "-2"}, "stock[...]: expected `int` >= 0"),
        ({"sku": "S", "title": "t", "price": "1", "stock.w": "two"}, "stock[...]: expected `int`"),
        ({"sku": "S", "title": "t", "price": "1", "stock": "lots"}, "stock: expected an object"),
    ],
)
def test_validation_reasons_are_precise(row: dict, reason: str) -> None:
    with pytest.raises(RowRejected) as exc:
        product("canonical", row)
    assert exc.value.reason.lower().startswith(reason.lower()), exc.value.reason


def test_canonical_header_check() -> None:
    with pytest.raises(FeedError, match="sku, price"):
        get_profile("canonical", "acme").check_columns(["title", "brand"])
    with pytest.raises(UnknownProfile):
        get_profile("nope", "acme")


def test_bigbasket_row() -> None:
    p = product(
        "bigbasket",
        {
            "index": "1",
            "product": "Garlic Oil",
            "category": "Beauty & Hygiene",
            "sub_category": "Hair Care",
            "brand": "Sri Sri Ayurveda ",
            "sale_price": "220",
            "market_price": "250",
            "type": "Hair Oil & Serum",
            "rating": "",
        },
        "bb",
    )
    assert p.product_id == "bb:1" and p.sku == "bb:BB-1" and p.brand == "Sri Sri Ayurveda"
    assert p.price == Decimal("220") and p.list_price == Decimal("250") and p.rating is None
    assert p.category_path == ("Beauty & Hygiene", "Hair Care", "Hair Oil & Serum")


def test_myntra_row_and_type_rule() -> None:
    p = product(
        "myntra",
        {
            "ProductID": "10017413",
            "ProductName": "DKNY Unisex Black Printed Medium Trolley Bag",
            "ProductBrand": "DKNY",
            "Gender": "Unisex",
            "Price (INR)": "11745",
            "NumImages": "7",
            "Description": "d",
            "PrimaryColor": " Black",
        },
        "myn",
    )
    assert p.category_path == ("Fashion", "Unisex", "Bags")
    assert p.attributes == {"gender": "Unisex", "color": "Black", "num_images": "7"}
    assert myntra_product_type("Roadster Men Navy Slim Fit T-shirt") == "T-Shirts"
    assert myntra_product_type("EthnoVogue Kurta Set with Jacket") == "Jackets"
    assert myntra_product_type("Something Unusual") == "Other"


def test_instacart_needs_a_price_and_joins_side_files(tmp_path: Path) -> None:
    (tmp_path / "aisles.csv").write_text('"aisle_id","aisle"\n1,"fresh fruits"\n2,"missing"\n')
    (tmp_path / "departments.csv").write_text('"department_id","department"\n4,"produce"\n')
    (tmp_path / "prices.csv").write_text("product_id,price\n10,2.49\n")
    row = {"product_id": "10", "product_name": "Bananas", "aisle_id": "1", "department_id": "4"}
    p = product("instacart", row, "ic", tmp_path)
    assert (
        p.category_path == ("Produce", "Fresh Fruits") and p.price == Decimal("2.49") and p.currency == "USD"
    )
    missing_aisle = product("instacart", {**row, "aisle_id": "2"}, "ic", tmp_path)
    assert missing_aisle.category_path == ("Produce",)
    with pytest.raises(RowRejected, match="price: missing"):
        product("instacart", {**row, "product_id": "11"}, "ic", tmp_path)
    assert product("instacart", {**row, "product_id": "11", "price": "1"}, "ic", tmp_path).price == 1
