"""Request and response I/O for a route whose framework overhead decides a benchmark target.

A route uses these only when ``docs/BENCHMARKS.md`` shows a target failing without them (today: the
reservation route, ``POST /v1/reservations``); everything else takes Litestar's parameters, bodies and
responses. Errors never come from here: a hot route raises domain errors like any other, and the
error table answers them.

- ``read_body``: the request body from the ASGI ``receive`` messages, with a size limit (Litestar's
  body stream parses every header first).
- ``first_header``: one header from the ASGI scope, without building Litestar's header multidict.
- ``JsonBytes``: a pre-encoded JSON answer as a bare ASGI response (Litestar's ``Response`` builds a
  header set and renders through its encoders per response). A handler returning it declares its
  schema with ``responses=`` so the OpenAPI document still shows it.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import ClientException
from litestar.status_codes import HTTP_413_REQUEST_ENTITY_TOO_LARGE
from litestar.types import Receive, Scope, Send

_CONTENT_TYPE = (b"content-type", b"application/json")


async def read_body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The whole body; 413 (in the one error shape) past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
        size += len(chunk)
        if size > limit:
            raise ClientException(
                detail=f"body larger than {limit} bytes", status_code=HTTP_413_REQUEST_ENTITY_TOO_LARGE
            )
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def first_header(request: Request[Any, Any, Any], name: bytes) -> str | None:
    """The first value of header ``name`` (lower case, as ASGI sends names), or None."""
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class JsonBytes:
    __slots__ = ("body", "extra_headers", "status")

    def __init__(self, body: bytes, status: int = 200, extra_headers: tuple[tuple[bytes, bytes], ...] = ()):
        self.body = body
        self.status = status
        self.extra_headers = extra_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [_CONTENT_TYPE, (b"content-length", b"%d" % len(self.body)), *self.extra_headers]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})
