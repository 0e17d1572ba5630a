"""OPTIONS answers that list every method of a path (a Litestar 2 workaround).

Litestar 2 adds an OPTIONS handler to a path when its first handler is registered, and that handler's
``Allow`` keeps listing only the methods known then (litestar#4169, fixed in 3.0): a controller with
``GET`` and ``DELETE`` on one path answers ``Allow: DELETE, OPTIONS``. An OPTIONS handler registered
before the controllers takes its place, so ``with_options`` puts one first for each path that several
handlers serve.
"""

from __future__ import annotations

from litestar import Controller, HttpMethod, Response, route
from litestar.handlers import HTTPRouteHandler
from litestar.status_codes import HTTP_204_NO_CONTENT
from litestar.utils import join_paths


def with_options(*controllers: type[Controller]) -> list[type[Controller] | HTTPRouteHandler]:
    """``controllers`` preceded by an OPTIONS handler for each of their paths with several methods."""
    methods: dict[str, set[str]] = {}
    for controller in controllers:
        prefix: str = vars(controller).get("path", "/")  # a class attribute (``path`` is a slot too)
        for handler in vars(controller).values():
            if isinstance(handler, HTTPRouteHandler):
                for path in handler.paths:
                    methods.setdefault(join_paths([prefix, path]), set()).update(handler.http_methods)
    options = [_options(path, allowed) for path, allowed in methods.items() if len(allowed) > 1]
    return [*options, *controllers]


def _options(path: str, methods: set[str]) -> HTTPRouteHandler:
    allow = ", ".join(sorted({*methods, "OPTIONS"}))

    @route(path, http_method=[HttpMethod.OPTIONS], include_in_schema=False, sync_to_thread=False)
    def options() -> Response[None]:
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers={"Allow": allow})

    return options
