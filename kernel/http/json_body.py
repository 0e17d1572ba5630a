"""JSON request bodies: only sent as JSON, only plain JSON (``kernel.http.json_guard``), else 4xx.

A body sent as anything but JSON is refused with 415: a cross-site form can post ``text/plain``,
``application/x-www-form-urlencoded`` or ``multipart/form-data`` without a preflight, never
``application/json``. A body without any Content-Type is refused too (415): a JSON route reads only
what says it is JSON, so no client relies on a guess (a key in a header, which a cross-site request
cannot add, is the other half of that door). Nesting past ``MAX_DEPTH`` and a repeated key are a 400.

- ``json_body``: for a handler that reads its body itself (the reservation hot path, raw bodies);
- ``json_body_only``: ``before_request`` of a route whose body Litestar decodes (it keeps the body,
  so it is read once).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ClientException
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE

from kernel.http.json_guard import JSON_MEDIA_TYPE, MAX_DEPTH, JsonShapeError, decode_json, is_json_media_type


def require_json_media_type(content_type: str | None) -> None:
    """415 for a body sent as anything but JSON, or without a Content-Type."""
    if content_type != JSON_MEDIA_TYPE and not is_json_media_type(content_type):
        got = content_type or "no Content-Type"
        raise ClientException(
            detail=f"send the body as {JSON_MEDIA_TYPE} (got {got})",
            status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        )


def json_body(raw: bytes, content_type: str | None, *, max_depth: int = MAX_DEPTH) -> Any:
    """The decoded body of a JSON route: 415 if not sent as JSON, 400 if not JSON or refused."""
    require_json_media_type(content_type)
    try:
        return decode_json(raw, max_depth=max_depth)
    except msgspec.DecodeError as exc:
        raise ClientException(detail=f"invalid JSON body: {exc}") from None
    except JsonShapeError as exc:
        raise ClientException(detail=f"invalid JSON body: {exc.reason}") from None


async def json_body_only(request: Request[Any, Any, Any]) -> None:
    """``before_request`` of a route whose body Litestar decodes: checked first."""
    json_body(await request.body(), request.headers.get("content-type"))
