"""A pre-encoded JSON answer as a bare ASGI response, for hot paths that render their own bytes.

Litestar's ``ASGIResponse`` builds a mutable header set per response (~4 us here); a handler that
already holds the JSON bytes needs only the two ASGI messages. A handler returning ``JsonBytes``
declares its schema with ``responses=`` so the OpenAPI document still shows it.
"""

from __future__ import annotations

from litestar.types import Receive, Scope, Send

_CONTENT_TYPE = (b"content-type", b"application/json")


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
