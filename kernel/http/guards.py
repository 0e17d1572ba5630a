"""Who may call a route: Litestar guards, each written once, configured per app through route ``opt``.

A route names its guard (``@put(..., guards=[admin_only])``: on the route, because a controller's guards
also guard the OPTIONS answer Litestar adds to its paths); the context's router factory, called at
wiring, puts what the guard checks against into ``opt`` (``admin_token_opt(settings.admin_token)``,
``api_key_opt(check)``), so two apps in one process can hold different secrets. A guard whose ``opt``
was never set refuses everyone.

- ``admin_only``: ``Authorization: Bearer <token>`` equal to the app's admin token (401 without a bearer
  token, 403 with a wrong one or when no admin token is configured).
- ``api_key_only``: an ``X-Api-Key`` header handed to a key-checking callable together with the path
  parameters (for suppliers: the key of the supplier in the path); the callable raises its context's
  own errors, which the context's error table answers.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler

ADMIN_TOKEN_OPT = "admin_token"
API_KEY_CHECK_OPT = "api_key_check"
API_KEY_HEADER = "X-Api-Key"

KeyCheck = Callable[[str | None, Mapping[str, Any]], Awaitable[None]]
"""``(key or None, path parameters)``: returns when the key may call the route, raises otherwise."""


def admin_token_opt(token: str | None) -> dict[str, Any]:
    return {ADMIN_TOKEN_OPT: token}


def api_key_opt(check: KeyCheck) -> dict[str, Any]:
    return {API_KEY_CHECK_OPT: check}


def admin_only(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    authorization = connection.headers.get("authorization", "")
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise NotAuthorizedException(
            detail="missing Authorization: Bearer <admin token>", headers={"WWW-Authenticate": "Bearer"}
        )
    token: str | None = handler.opt.get(ADMIN_TOKEN_OPT)
    if not token or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise PermissionDeniedException(detail="admin token rejected (or EMPORIUM_ADMIN_TOKEN unset)")


async def api_key_only(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    check: KeyCheck | None = handler.opt.get(API_KEY_CHECK_OPT)
    if check is None:
        raise PermissionDeniedException(detail="no API key is accepted here")
    await check(connection.headers.get(API_KEY_HEADER), connection.path_params)
