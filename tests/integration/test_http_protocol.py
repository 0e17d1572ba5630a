"""The serve command's HTTP protocol (uvicorn httptools + coalesced writes) over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from litestar import Litestar, MediaType, Response, get, head
from litestar.response import Stream

from emporium.http_protocol import CoalescingHttpToolsProtocol, CoalescingTransport


@get("/json", media_type=MediaType.JSON, sync_to_thread=False)
def json_route() -> dict[str, str]:
    return {"hello": "world"}


@get("/big", media_type=MediaType.TEXT, sync_to_thread=False)
def big_route() -> str:
    return "x" * 3_000_000


@get("/stream")
async def stream_route() -> Stream:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(5):
            await asyncio.sleep(0.01)
            yield f"chunk{i};".encode()

    return Stream(chunks())


@get("/empty", status_code=204, sync_to_thread=False)
def empty_route() -> None:
    return None


@head("/json-head", sync_to_thread=False)
def head_route() -> Response[None]:
    return Response(None, headers={"x-probe": "1"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[int]:
    app = Litestar([json_route, big_route, stream_route, empty_route, head_route])
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, http=CoalescingHttpToolsProtocol
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done()
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_keep_alive_requests_of_every_shape() -> None:
    async with serving() as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(3):  # several requests on one keep-alive connection
            r = await client.get("/json")
            assert r.status_code == 200 and r.json() == {"hello": "world"}
        big = await client.get("/big")
        assert big.status_code == 200 and len(big.content) == 3_000_000
        streamed = await client.get("/stream")
        assert streamed.text == "".join(f"chunk{i};" for i in range(5))
        assert (await client.get("/empty")).status_code == 204
        h = await client.head("/json-head")
        assert h.status_code == 200 and h.headers["x-probe"] == "1" and h.content == b""
        assert (await client.get("/missing")).status_code == 404


async def test_pipelined_requests_get_every_response_in_order() -> None:
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n"
        writer.write(request * 3 + b"GET /empty HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 5)  # the server closes after the last one
        writer.close()
        assert raw.count(b"HTTP/1.1 200 OK") == 3 and raw.count(b'{"hello":"world"}') == 3
        assert raw.count(b"HTTP/1.1 204") == 1
        assert raw.index(b"204 No Content") > raw.rindex(b'{"hello":"world"}')


class _Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0


async def test_writes_of_one_loop_turn_leave_as_one_write() -> None:
    inner = _Recording()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(bytearray(b"body"))
    assert inner.writes == [] and transport.get_write_buffer_size() == 23
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    transport.write(b"")  # nothing to send: nothing scheduled
    await asyncio.sleep(0)
    assert len(inner.writes) == 1


async def test_close_sends_what_is_held_and_abort_drops_it() -> None:
    inner = _Recording()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"last words")
    transport.close()
    assert inner.writes == [b"last words"] and inner.closed
    await asyncio.sleep(0)  # the scheduled flush finds nothing left
    assert inner.writes == [b"last words"]

    other = _Recording()
    aborted = CoalescingTransport(other, asyncio.get_running_loop())
    aborted.write(b"never sent")
    with pytest.raises(NotImplementedError):  # the recording transport has no abort
        aborted.abort()
    await asyncio.sleep(0)
    assert other.writes == []
