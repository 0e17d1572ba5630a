"""The storefront page at ``/`` (emporium/web) in real headless Chromium, against ``emporium demo``.

Debian's ``chromium`` driven by Playwright for Python (``playwright`` from the dev extras, pointed at
``/usr/bin/chromium``: no browser download). ``make test`` installs both; a Chromium that cannot start
fails these tests with the reason, it never skips them. Screenshots of every step go to
``.artifacts/screenshots/`` (gitignored).

The buying test needs the carts and checkout routes; it is skipped, saying so, only while the server
answers 404 for them (not merged yet).
"""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlsplit

import httpx
import pytest

from emporium.demo import DEMO_SEED, DEMO_SUPPLIER
from emporium.web import STATIC_DIR
from ingest.synthetic import generate_products

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / ".artifacts" / "screenshots"
CHROMIUM = os.environ.get("EMPORIUM_CHROMIUM", "/usr/bin/chromium")
# What the machine notes found necessary: no sandbox as root, and no background connections (a closed
# network refuses them by the dozen), no first-run or sync chatter.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
DEMO_PRODUCTS = 300
TIMEOUT_MS = 15_000
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}


def shot(page: Any, name: str, *, full_page: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright; fails (never skips) with the reason when it cannot start."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"playwright is not installed ({exc}): `make test` installs it", pytrace=False)
    executable = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if not executable:
        pytest.fail(
            f"Chromium not found at {CHROMIUM} nor on PATH: `make test` installs Debian's chromium "
            "(or set EMPORIUM_CHROMIUM)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_FLAGS))
        except Exception as exc:
            pytest.fail(f"Chromium ({executable}) cannot start: {exc}", pytrace=False)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, emporium_demo: Callable[..., AbstractContextManager[Any]]
) -> Iterator[Any]:
    """`emporium demo` (what `make run` starts) on the embedded stack with a small catalog."""
    with emporium_demo(tmp_path_factory.mktemp("storefront") / "data", products=DEMO_PRODUCTS) as running:
        yield running


class Watch:
    """What a page did that it must not: reach another host, or throw."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.origin = urlsplit(base_url).netloc
        self.foreign: list[str] = []
        self.errors: list[str] = []
        page.on("request", self._request)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _request(self, request: Any) -> None:
        url = urlsplit(request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.netloc != self.origin:
            self.foreign.append(request.url)

    def check(self) -> None:
        assert not self.foreign, f"the page fetched from other hosts: {self.foreign}"
        assert not self.errors, f"the page threw: {self.errors}"


@pytest.fixture
def page(chromium: Any, demo: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport=DESKTOP, locale="en-IN")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watch = Watch(page, demo.base_url)
    try:
        yield page
        watch.check()
    finally:
        context.close()


def storefront_key(demo: Any) -> str:
    """The key the demo saved for its storefront: what a person pastes into the page."""
    return (demo.data_dir / "demo" / "storefront-api-key").read_text(encoding="utf-8").strip()


def wait_rendered(page: Any, part: str) -> None:
    """Until the view shows a route naming ``part`` (app.js marks ``#view[data-rendered]`` when done)."""
    page.wait_for_function(
        "(part) => { const v = document.querySelector('#view');"
        " return !v.hasAttribute('aria-busy') && (v.dataset.rendered || '').includes(part); }",
        arg=part,
    )


def unlabelled_controls(page: Any) -> list[str]:
    """Visible form controls without an accessible name (label, aria-label or aria-labelledby)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter((el) => el.offsetParent !== null && el.type !== 'hidden')
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
            .map((el) => el.outerHTML.slice(0, 120))"""
    )


def test_search_with_a_typo_and_open_a_product(page: Any, demo: Any) -> None:
    page.goto(f"{demo.base_url}/")
    page.wait_for_selector("#view[data-homepage]")
    homepage = httpx.get(f"{demo.base_url}/v1/homepage", timeout=10).status_code
    if homepage == 404:  # not merged yet: the page says so and still shows products
        assert page.get_attribute("#view", "data-homepage") == "fallback"
        assert "not available on this server yet" in page.inner_text("#view")
    else:  # the sections of GET /v1/homepage, each with its products
        assert homepage == 200, homepage
        assert page.get_attribute("#view", "data-homepage") == "sections"
        assert page.locator("#view [data-section] .card").count() > 0
    assert page.locator("#view .card").count() > 0, "the front page shows products"
    assert page.locator("h1").count() == 1
    shot(page, "01-home")

    # autocomplete: an ARIA combobox the keyboard drives
    box = page.locator("#q")
    box.click()
    box.press_sequentially("earb", delay=80)
    page.wait_for_selector("#suggestions [role=option]")
    assert box.get_attribute("aria-expanded") == "true"
    box.press("ArrowDown")
    assert page.locator("#suggestion-0").get_attribute("aria-selected") == "true"
    assert box.get_attribute("aria-activedescendant") == "suggestion-0"
    shot(page, "02-autocomplete")
    chosen = page.inner_text("#suggestion-0")
    box.press("Enter")  # the highlighted completion is searched
    wait_rendered(page, "/search")
    assert chosen in page.inner_text("#results-heading")
    assert page.locator("#suggestions").is_hidden()

    # a typo still finds the shirts, each with its stock badge
    box.fill("cotton shrt")
    box.press("Enter")
    wait_rendered(page, "q=cotton+shrt")
    assert page.locator("#suggestions").is_hidden()
    titles = page.locator(".results .card-title").all_inner_texts()
    assert any("Cotton Shirt" in title for title in titles), titles
    assert page.locator(".results .badge.in-stock").count() == len(titles)
    assert "cotton shrt" in page.inner_text("#results-heading")
    shot(page, "03-results-typo", full_page=True)

    # deliver to a zone: every hit gets its ETA badge
    zones = page.locator("#deliver-to option").all_inner_texts()
    assert "DEL" in zones, zones
    page.select_option("#deliver-to", "DEL")
    page.wait_for_selector(".results .badge.eta")
    wait_rendered(page, "/search")
    assert page.locator(".results .badge.eta").count() == page.locator(".results .card").count()
    assert "to DEL" in page.locator(".results .badge.eta").first.inner_text()
    shot(page, "04-results-deliver-to")

    # a brand facet narrows the hits to that brand
    first_brand = page.locator("#facet-brand input[type=checkbox]").first
    brand = first_brand.get_attribute("data-brand")
    first_brand.check()
    wait_rendered(page, "brand=")
    metas = page.locator(".results .card .meta").all_inner_texts()
    assert metas and all(meta.startswith(f"{brand} ·") for meta in metas), (brand, metas)
    assert unlabelled_controls(page) == []
    shot(page, "05-results-brand-facet")

    # open a product: its live stock, ETA and the buy box
    link = page.locator(".results .card-title a").first
    title = link.inner_text()
    link.click()
    page.wait_for_selector("article.product h1")
    assert page.inner_text("article.product h1") == title
    assert page.locator("article.product .badge.in-stock").is_visible()
    assert "to DEL" in page.inner_text("article.product .delivery")
    assert page.locator("#add-to-cart").is_enabled()
    shot(page, "06-product", full_page=True)


def test_sold_out_items_say_so(page: Any, demo: Any) -> None:
    """Hidden from search by default (in stock only); shown with their badge and no way to buy otherwise."""
    sold_out = next(
        p for p in generate_products(DEMO_PRODUCTS, seed=DEMO_SEED) if not any(p["stock"].values())
    )
    product_id = f"{DEMO_SUPPLIER}:{sold_out['product_id']}"
    card = f".results .card[data-product-id='{product_id}']"
    page.goto(f"{demo.base_url}/#/search?q={quote_plus(sold_out['title'])}")
    wait_rendered(page, "/search")
    assert page.locator(card).count() == 0
    page.uncheck("#in-stock")
    wait_rendered(page, "in_stock=false")
    assert page.locator(f"{card} .badge.sold-out").inner_text() == "Out of stock"
    assert page.locator(f"{card} .add").is_disabled()
    page.locator(f"{card} .card-title a").click()
    page.wait_for_selector("article.product h1")
    assert page.locator("article.product .badge.sold-out").is_visible()
    assert page.locator("#add-to-cart").is_disabled()
    shot(page, "07-sold-out-product")


def test_narrow_screen(chromium: Any, demo: Any) -> None:
    context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watch = Watch(page, demo.base_url)
    try:
        page.goto(f"{demo.base_url}/#/search?q=shirt")
        page.wait_for_selector(".results .card")
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page scrolls sideways by {overflow}px on a phone"
        assert page.locator("details.filters").get_attribute("open") is None, "filters fold away"
        shot(page, "08-phone-results")
        page.click("details.filters summary")
        assert page.locator("#facet-brand").is_visible()
        brand = page.locator("#facet-brand input[type=checkbox]").first
        brand.check()
        wait_rendered(page, "brand=")
        assert page.locator("#facet-brand").is_visible(), "the filters stay open while the shopper uses them"
        assert page.evaluate("() => document.activeElement.closest('#facet-brand') !== null")
        shot(page, "09-phone-filters", full_page=True)
        watch.check()
    finally:
        context.close()


def _commerce_missing(base_url: str, key: str) -> str | None:
    """Why buying cannot be tested yet (the routes answer 404), else None."""
    headers = {"X-Api-Key": key}
    cart = httpx.get(f"{base_url}/v1/carts/probe-shopper", headers=headers, timeout=10)
    if cart.status_code == 404:
        return "GET /v1/carts/{customer_id} answers 404: carts are not merged yet"
    checkout = httpx.post(f"{base_url}/v1/checkouts", headers=headers, json={}, timeout=10)
    if checkout.status_code == 404:
        return "POST /v1/checkouts answers 404: checkout is not merged yet"
    return None


def test_add_to_cart_and_buy(page: Any, demo: Any) -> None:
    key = storefront_key(demo)
    missing = _commerce_missing(demo.base_url, key)
    assert missing is None, missing  # carts and checkout are part of the product: their absence fails
    page.goto(f"{demo.base_url}/#/search?q=cotton+shirt")
    page.wait_for_selector(".results .card")

    # without a key, adding asks for one: the page ships none
    page.locator(".results .add").first.click()
    page.wait_for_selector("dialog#settings[open]")
    shot(page, "10-storefront-key-dialog")
    page.fill("#storefront-key", key)
    page.click("#save-settings")
    page.wait_for_selector("dialog#settings", state="hidden")
    assert "✓" in page.inner_text("#settings-button")

    page.locator(".results .card-title a").first.click()
    page.wait_for_selector("article.product h1")
    title = page.inner_text("article.product h1")
    sku = page.inner_text("dl.facts .sku")
    before = httpx.get(f"{demo.base_url}/v1/stock/{sku}", timeout=10).json()
    page.click("#add-to-cart")
    page.wait_for_function("() => document.querySelector('#cart-count').textContent === '1'")
    shot(page, "11-added-to-cart")

    page.click("#cart-link")
    page.wait_for_selector(".cart-line")
    assert title in page.inner_text(".cart-lines")
    shot(page, "12-cart")
    page.get_by_role("button", name="Check out").click()
    page.wait_for_selector("#place-order")
    assert title in page.inner_text("table.lines")
    shot(page, "13-checkout-held")
    page.click("#place-order")
    page.wait_for_selector(".order-id")
    order_id = page.inner_text(".order-id")
    assert order_id
    page.wait_for_function("() => document.querySelector('#cart-count').textContent === '0'")
    shot(page, "14-order-placed")

    after = httpx.get(f"{demo.base_url}/v1/stock/{sku}", timeout=10).json()
    assert after["sold"] == before["sold"] + 1, (before, after)  # really bought: inventory sold one unit
    page.click("a[href='#/orders']")
    page.wait_for_selector("#view h1:has-text('Your orders')")
    shot(page, "15-orders")


def test_the_page_is_package_data_and_names_no_other_host(demo: Any) -> None:
    """Served as files of the package (pyproject globs), with the right types, and nothing in them points
    at another host (no CDN): what Chromium fetched above is checked by ``Watch`` too."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = set(globs.get("emporium.web", ()))
    types = {".html": "text/html", ".css": "text/css", ".js": "javascript", ".svg": "image/svg+xml"}
    for path in sorted(STATIC_DIR.iterdir()):
        glob = f"static/*{path.suffix}"
        assert glob in shipped, f"{path.name}: add {glob} to emporium.web's package-data globs"
        text = path.read_text(encoding="utf-8")
        hosts = re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text)
        assert [h for h in hosts if h != "http://www.w3.org/2000/svg"] == [], (path.name, hosts)
        served = httpx.get(f"{demo.base_url}/{path.name}", timeout=10)
        assert served.status_code == 200, path.name
        assert types[path.suffix] in served.headers["content-type"], (path.name, served.headers)
    index = httpx.get(f"{demo.base_url}/", timeout=10)
    assert index.status_code == 200 and "<title>Emporium storefront</title>" in index.text
    assert "storefront-api-key" in index.text  # tells a person where the demo's key is ...
    assert storefront_key(demo) not in index.text  # ... and never carries one
