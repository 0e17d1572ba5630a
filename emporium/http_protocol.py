"""uvicorn's httptools protocol with one ``send()`` per response instead of two, and caps on request heads.

uvicorn writes a response's head and its body with two ``transport.write`` calls, and asyncio sends
each at once: two syscalls and two TCP segments per response. Under load the send syscalls were the
largest single cost in the server's profile (~12% of its samples at 200 clients). The transport
here holds what is written during one event-loop turn and sends it with one ``write`` at the start
of the next turn (``call_soon``), so a head and its body, and pipelined responses, leave together.
Nothing waits longer than the current turn, and closing the transport sends what is held first.

httptools itself takes a request head of any size and any duration: a 50 MB header was buffered whole,
and connections that never finish their head stayed open forever (slowloris). The protocol refuses a
head past uvicorn's ``h11_max_incomplete_event_size`` (the same cap the h11 implementation applies)
with 431, and closes a connection whose head is not complete ``head_timeout_s`` after the connection
(or the head) began, with 408 if part of it arrived. ``server_options`` turns the settings into
``uvicorn.run`` arguments: these two caps, ``limit_concurrency`` (503 past that many connections or
requests in flight) and the keep-alive timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kernel.settings import Settings

DEFAULT_MAX_HEAD_BYTES = 64 * 1024


class CoalescingTransport(asyncio.Transport):
    """Delegates to an asyncio transport; writes made in one loop turn go out as one write."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        chunk = data if isinstance(data, bytes) else bytes(data)  # the caller may reuse its buffer
        if self._held is None:
            self._held = [chunk]
            self._loop.call_soon(self._flush)
        else:
            self._held.append(chunk)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        held = sum(len(c) for c in self._held) if self._held else 0
        return held + self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``uvicorn.run(..., http=CoalescingHttpToolsProtocol)``: httptools parsing, coalesced writes,
    capped request heads (``with_head_timeout`` sets the time cap)."""

    head_timeout_s: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))
        self._max_head_bytes = self.config.h11_max_incomplete_event_size or DEFAULT_MAX_HEAD_BYTES
        self._reading_head = True  # from the connection, and after each request, to the end of a head
        self._head_bytes = 0
        self._head_started = False  # some bytes of the current head arrived
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        in_head = self._reading_head
        super().data_received(data)
        if in_head and self._reading_head:  # the head is still not complete after this chunk
            self._head_bytes += len(data)
            if self._head_bytes > self._max_head_bytes:
                self._refuse(431, f"request head larger than {self._max_head_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = self._head_started = True
        if self._head_timer is None:
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._reading_head = self._head_started = False
        self._head_bytes = 0
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head = True  # what comes next is the next request's head (timed from its first byte)

    def _arm_head_timer(self) -> None:
        if self.head_timeout_s is not None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._reading_head or self.transport.is_closing():
            return
        if self._head_started:
            self._refuse(408, f"request head not complete within {self.head_timeout_s} s")
        else:
            self.transport.close()

    def _refuse(self, status: int, detail: str) -> None:
        """Answer in the one error shape and close: the rest of the head is never read."""
        body = msgspec.json.encode({"status_code": status, "detail": detail})
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        self.transport.write(head % (status, reason, len(body)) + b"connection: close\r\n\r\n" + body)
        self.transport.close()


def with_head_timeout(head_timeout_s: float | None) -> type[CoalescingHttpToolsProtocol]:
    """The protocol class with its head time cap (uvicorn creates protocols from a class)."""
    return type("TimedHttpToolsProtocol", (CoalescingHttpToolsProtocol,), {"head_timeout_s": head_timeout_s})


def server_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.run`` arguments for the server caps of ``settings`` (0 turns a cap off)."""
    return {
        "http": with_head_timeout(settings.http_header_timeout_s or None),
        "h11_max_incomplete_event_size": settings.http_max_header_bytes or None,
        "limit_concurrency": settings.http_max_connections or None,
        "timeout_keep_alive": settings.http_keep_alive_s,
    }
