"""The storefront page: plain HTML, CSS and ES modules under ``static/``, served by the API at ``/``.

No build step and nothing from the internet: the files are package data, served as they are by Litestar's
static files router (``index.html`` for ``/``). The page only talks to this API, same origin; it never
carries a storefront key: the shopper pastes one (see docs/adr/0008-storefront-page-key.md).
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from kernel.http.limits import rate_limit_group_opt

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGE_GROUP = "storefront-page"  # its own rate-limit group: loading the page never eats the search budget


def storefront_page() -> Router:
    """``GET /`` (index.html) and ``GET /{file}``: every other route of the app is more specific and wins.
    Revalidated on each load (``no-cache`` + ETag), so a deploy is seen at once."""
    return create_static_files_router(
        path="/",
        directories=[STATIC_DIR],
        html_mode=True,
        name="storefront-page",
        cache_control=CacheControlHeader(no_cache=True),
        include_in_schema=False,
        opt=rate_limit_group_opt(PAGE_GROUP),
    )
