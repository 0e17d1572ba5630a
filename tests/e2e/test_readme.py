"""The README's walkthrough is true: its commands run as written against `emporium demo` and do what its
comments say.

How the block is run, so that it is the README's text and nothing else:

- the block is the first ```bash fence after "After `make run`" in README.md;
- it runs in ONE bash process (its `field` function and `available`/`reservation` variables carry over,
  as in the terminal the README talks to), in a temporary directory standing in for the repository
  root: `.emporium` there is the demo's data dir (so `.emporium/demo/admin-token` resolves) and
  `docs` links to the repository's docs/ (so `@docs/examples/feed.csv` resolves);
- the only rewrite is `localhost:8000` -> the demo's free port;
- after each command the script prints a separator with the command's exit status, so every command
  is checked on its own against the effect `EXPECTED` states for it, in order. A command the README
  adds without an expected effect here fails the test.

The effects that go through the event log (a sold-out item leaves search, a restocked one returns) are
asynchronous: the README says "at once"; a loaded test machine gets `EVENTUAL_WITHIN_S` for them, by
running that one command again.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
EXAMPLE_FEED = ROOT / "docs" / "examples" / "feed.csv"
EXAMPLE_STOCK_FEED = ROOT / "docs" / "examples" / "stock.csv"
README_PORT = "localhost:8000"
SKU = "demo:SYN-000001"  # the README's example item, by its supplier-scoped SKU
DEMO_PRODUCTS = 800  # the first 800 demo products hold a match for every README search
EVENTUAL_WITHIN_S = 5.0
SEPARATOR = "\x1eREADME-COMMAND-EXIT"
Rerun = Callable[[str], str]


def readme_block() -> str:
    text = README.read_text(encoding="utf-8")
    after = text[text.index("After `make run`") :]
    match = re.search(r"^```bash\n(.*?)^```", after, re.MULTILINE | re.DOTALL)
    assert match, "no ```bash block after 'After `make run`' in README.md"
    return match.group(1)


def commands(block: str) -> list[str]:
    """Logical command lines: continuation lines joined, blank and comment-only lines left out."""
    found: list[str] = []
    pending = ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        if not line.endswith("\\"):
            found.append(pending.rstrip("\n"))
            pending = ""
    assert not pending, f"README block ends inside a command: {pending!r}"
    return found


class Expected(NamedTuple):
    """What one README command must contain, and a check of its output (with what earlier checks saw)."""

    marker: str
    check: Callable[[str, dict[str, Any]], None]
    eventual: bool = False


def _json(output: str) -> Any:
    return json.loads(output)


def _healthy(output: str, _: dict[str, Any]) -> None:
    assert _json(output)["status"] == "ok"


def _homepage(output: str, _: dict[str, Any]) -> None:
    page = _json(output)
    ids = [section["id"] for section in page["sections"]]
    assert ids[:3] == ["trending", "new_arrivals", "deals"] and ids[-1] == "recommended", ids
    assert page["platform"] == "app" and len(page["sections"][1]["items"]) == 8, page


def _typo_tolerant(output: str, _: dict[str, Any]) -> None:
    hits = _json(output)["hits"]
    assert len(hits) == 3 and all("Cotton Shirt" in hit["title"] for hit in hits), hits


def _filtered_and_sorted(output: str, _: dict[str, Any]) -> None:
    hits = _json(output)["hits"]
    prices = [float(hit["price"]) for hit in hits]
    assert hits, "the filtered search found nothing"
    assert all(hit["brand"] == "Roadster" and hit["eta_hours"] is not None for hit in hits), hits
    assert all(price <= 1000 for price in prices) and prices == sorted(prices), prices


def _suggests(output: str, _: dict[str, Any]) -> None:
    suggestions = _json(output)["suggestions"]
    assert suggestions and all("Shampoo" in s for s in suggestions), suggestions


def _skus(output: str) -> list[str]:
    return [hit["sku"] for hit in _json(output)["hits"]]


def _found(output: str, _: dict[str, Any]) -> None:
    assert SKU in _skus(output)


def _gone(output: str, _: dict[str, Any]) -> None:
    assert SKU not in _skus(output)


def _stock(output: str, state: dict[str, Any]) -> None:
    stock = _json(output)
    assert stock["sku"] == SKU and stock["available"] > 1, stock
    state["available"] = stock["available"]


def _prints_nothing(output: str, _: dict[str, Any]) -> None:
    assert output == "", output


def _bought_everything(output: str, state: dict[str, Any]) -> None:
    reservation = _json(output)
    assert reservation["status"] == "confirmed", reservation
    assert reservation["sku"] == SKU and reservation["quantity"] == state["available"], reservation


def _restocked(output: str, state: dict[str, Any]) -> None:
    stock = _json(output)
    sold = state["available"]  # everything that was available was bought
    assert (stock["on_hand"], stock["sold"]) == (sold + 50, sold), stock
    assert stock["available"] == 50 and stock["in_stock"], stock
    assert stock["warehouses"] == {"wh-north": sold + 50}, stock


def _feed_accepted(output: str, _: dict[str, Any]) -> None:
    report = _json(output)
    rows = len(EXAMPLE_FEED.read_text(encoding="utf-8").splitlines()) - 1
    assert (report["status"], report["accepted"], report["rejected"]) == ("completed", rows, 0), report


def _stock_feed_accepted(output: str, _: dict[str, Any]) -> None:
    report = _json(output)
    rows = len(EXAMPLE_STOCK_FEED.read_text(encoding="utf-8").splitlines()) - 1
    assert (report["status"], report["accepted"], report["rejected"]) == ("completed", rows, 0), report
    assert report["profile"] == "stock", report


def _cart(output: str, state: dict[str, Any]) -> None:
    cart = _json(output)
    assert cart["customer_id"] == "bob" and all(i["available"] for i in cart["items"]), cart
    assert not any(i["price_changed"] for i in cart["items"]), cart
    state["cart_total"] = cart["total"]


def _order(output: str, state: dict[str, Any]) -> None:
    order = _json(output)
    assert order["order_id"] and order["payment_reference"] == "pay-123", order
    assert [(x["sku"], x["quantity"]) for x in order["lines"]] == [
        ("demo:SYN-000003", 2),
        ("demo:SYN-000004", 1),
    ]
    assert order["total"] == state["cart_total"] == "5945.5", order
    state["order_id"] = order["order_id"]


def _order_history(output: str, state: dict[str, Any]) -> None:
    history = _json(output)
    assert [o["order_id"] for o in history.get("orders", [])] == [state["order_id"]], history


EXPECTED = [
    Expected("field()", _prints_nothing),
    Expected("/healthz", _healthy),
    Expected("/v1/homepage", _homepage, eventual=True),
    Expected("q=cotton+shrt", _typo_tolerant),
    Expected("brand=Roadster", _filtered_and_sorted),
    Expected("/v1/suggest?q=sham", _suggests),
    Expected(f"# {SKU} is a hit", _found),
    Expected(f"/v1/stock/{SKU}", _stock),
    Expected("available=$(", _prints_nothing),
    Expected("reservation=$(", _prints_nothing),
    Expected("/confirm", _bought_everything),
    Expected(f"# {SKU} is gone", _gone, eventual=True),
    Expected("sold=$(", _prints_nothing),
    Expected("-XPUT", _restocked),
    Expected(f"# {SKU} is back", _found, eventual=True),
    Expected("/feeds", _feed_accepted),
    Expected("/suppliers/demo/stock", _stock_feed_accepted),
    Expected("shop=", _prints_nothing),
    Expected("demo:SYN-000003", lambda output, _: None),
    Expected("demo:SYN-000004", _cart),
    Expected("checkout=$(", _prints_nothing),
    Expected("/confirm", _order),
    Expected("/v1/customers/bob/orders", _order_history, eventual=True),
]


class Outcome(NamedTuple):
    status: int
    output: str


def run_block(lines: list[str], cwd: Path, port: int) -> list[Outcome]:
    """Run every command in one bash process; the exit status and output of each."""
    script = "".join(f"{_local(line, port)}\nprintf '\\n{SEPARATOR} %s\\n' \"$?\"\n" for line in lines)
    result = subprocess.run(
        ["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    parts = re.split(f"\n{SEPARATOR} (\\d+)\n", result.stdout)  # out, status, out, status, ..., ""
    assert parts[-1] == "", parts[-1]
    return [Outcome(int(status), output) for output, status in zip(parts[0:-1:2], parts[1::2], strict=True)]


def _local(command: str, port: int) -> str:
    return command.replace(README_PORT, f"127.0.0.1:{port}")


def _rerun(command: str, cwd: Path, port: int) -> str:
    result = subprocess.run(
        ["bash", "-c", _local(command, port)], cwd=cwd, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def check_effect(expected: Expected, line: str, output: str, state: dict[str, Any], rerun: Rerun) -> None:
    """``expected.check`` on the output; an eventual effect gets the command run again until it shows."""
    deadline = time.monotonic() + EVENTUAL_WITHIN_S
    while True:
        try:
            expected.check(output, state)
            return
        except AssertionError as error:
            if not expected.eventual or time.monotonic() > deadline:
                raise AssertionError(f"README command did not do what it says:\n{line}\n{output}") from error
        time.sleep(0.1)
        output = rerun(line)


def test_every_readme_command_has_its_expected_effect() -> None:
    lines = commands(readme_block())
    listing = "\n".join(lines)
    assert len(lines) == len(EXPECTED), f"each README command needs its effect in EXPECTED:\n{listing}"
    for expected, line in zip(EXPECTED, lines, strict=True):
        assert expected.marker in line, f"expected a command with {expected.marker!r} here, found:\n{line}"


def test_the_example_feed_has_every_canonical_column() -> None:
    header = EXAMPLE_FEED.read_text(encoding="utf-8").splitlines()[0].split(",")
    plain = {"product_id", "sku", "title", "description", "brand", "category_path", "price"}
    plain |= {"list_price", "currency", "rating", "image_url"}
    assert plain <= set(header), sorted(plain - set(header))
    assert any(c.startswith("stock.") for c in header) and any(c.startswith("attr.") for c in header)


@pytest.mark.slow
def test_readme_examples_run_as_written(
    tmp_path: Path, emporium_demo: Callable[..., AbstractContextManager[Any]]
) -> None:
    lines = commands(readme_block())
    assert len(lines) == len(EXPECTED), "see test_every_readme_command_has_its_expected_effect"
    (tmp_path / "docs").symlink_to(ROOT / "docs", target_is_directory=True)
    with emporium_demo(tmp_path / ".emporium", products=DEMO_PRODUCTS, EMPORIUM_LOG_LEVEL="warning") as demo:
        outcomes = run_block(lines, tmp_path, demo.port)
        state: dict[str, Any] = {}
        for expected, line, (status, output) in zip(EXPECTED, lines, outcomes, strict=True):
            assert status == 0, f"exit status {status} of README command:\n{line}\n{output}"
            check_effect(expected, line, output, state, lambda command: _rerun(command, tmp_path, demo.port))
