"""The OpenAPI UIs (Scalar at ``/docs``, Swagger UI at ``/docs/swagger``) with their scripts, styles and
favicon served by the app itself, so the docs render on a machine without internet. The files are
vendored in ``emporium/static/docs`` (versions and licences in its README)."""

from __future__ import annotations

from pathlib import Path

from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import OpenAPIRenderPlugin, ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

ASSETS_DIR = Path(__file__).parent / "static" / "docs"
ASSETS_PATH = "/docs/assets"


def _asset(name: str) -> str:
    return f"{ASSETS_PATH}/{name}"


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """Scalar (the first plugin also answers ``/docs`` itself) and Swagger UI, both offline."""
    favicon = f"<link rel='icon' type='image/png' href='{_asset('favicon-32x32.png')}'>"
    return [
        ScalarRenderPlugin(
            js_url=_asset("scalar-standalone.js"),
            css_url=_asset("scalar.css"),
            favicon=favicon,
            # no font CDN, no "try it" proxy: everything from this origin
            options={"withDefaultFonts": False, "hideClientButton": True},
        ),
        SwaggerRenderPlugin(
            path="/swagger",
            js_url=_asset("swagger-ui-bundle.js"),
            css_url=_asset("swagger-ui.css"),
            standalone_preset_js_url=_asset("swagger-ui-standalone-preset.js"),
            favicon=favicon,
        ),
    ]


def assets_router() -> Router:
    """Serves the vendored files; browsers may cache them for a day (they change only with a release)."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[ASSETS_DIR],
        include_in_schema=False,
        cache_control=CacheControlHeader(max_age=86400, public=True),
        name="docs-assets",
    )
