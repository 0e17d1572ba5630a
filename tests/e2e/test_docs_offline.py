"""The OpenAPI docs render without internet: every script, stylesheet and icon that `/docs` (Scalar) and
`/docs/swagger` (Swagger UI) name is served by the app itself, and nothing names another host."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.asyncio

ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


class _Assets(HTMLParser):
    """The URLs a page makes the browser fetch: script src, link href."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        url = named.get("src") if tag == "script" else named.get("href") if tag == "link" else None
        if url:
            self.urls.append(url)


def _assets_of(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize("page", ["/docs", "/docs/swagger"])
async def test_docs_page_and_every_asset_come_from_the_app(page, running_app, embedded_settings, tmp_path):
    async with running_app(embedded_settings(tmp_path)) as app:
        response = await app.client.get(page)
        assert response.status_code == 200, response.text
        html = response.text
        assets = _assets_of(html)
        assert len(assets) >= 3, f"{page} names too few assets: {assets}"  # favicon, CSS, JS
        foreign = [u for u in assets if urlsplit(u).netloc or u.startswith("//")]
        assert not foreign, f"{page} loads from other hosts: {foreign}"
        assert not re.findall(r"https?://", html), f"{page} names another host"
        for url in assets:
            fetched = await app.client.get(url)
            assert fetched.status_code == 200, f"{url}: {fetched.status_code}"
            suffix = url[url.rfind(".") :]
            assert ASSET_TYPES[suffix] in fetched.headers["content-type"], (url, fetched.headers)
            assert len(fetched.content) > 100, url
            assert "max-age" in fetched.headers.get("cache-control", ""), url


async def test_stylesheets_pull_nothing_from_other_hosts(running_app, embedded_settings, tmp_path):
    """CSS can fetch too (url(), @import): the vendored styles use inline data only."""
    async with running_app(embedded_settings(tmp_path)) as app:
        for name in ("swagger-ui.css", "scalar.css"):
            css = (await app.client.get(f"/docs/assets/{name}")).text
            remote = [u for u in re.findall(r"url\(([^)]*)\)", css) if "://" in u and "data:" not in u]
            assert not remote and "@import" not in css, (name, remote)
