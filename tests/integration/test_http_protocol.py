"""The serve command's HTTP protocol (uvicorn httptools + coalesced writes) over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psutil
import pytest
import uvicorn
from litestar import Litestar, MediaType, Response, get, head
from litestar.response import Stream

from emporium.http_protocol import (
    CoalescingHttpToolsProtocol,
    CoalescingTransport,
    server_options,
    with_head_timeout,
)
from kernel.settings import load_settings


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
async def serving(**options: Any) -> AsyncIterator[int]:
    app = Litestar([json_route, big_route, stream_route, empty_route, head_route])
    port = _free_port()
    options.setdefault("http", CoalescingHttpToolsProtocol)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, **options)
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


# -- caps on request heads, connections and keep-alive ----------------------------------------------


async def _open_unfinished(port: int, count: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``count`` connections, each with a request head that never ends."""
    connections = []
    for start in range(0, count, 250):  # a batch at a time: the listen backlog is finite
        batch = await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", port) for _ in range(start, min(count, start + 250)))
        )
        for _, writer in batch:
            writer.write(b"GET /json HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        connections.extend(batch)
    return connections


async def _closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before closing (b"" if nothing), or raise TimeoutError if it keeps it open."""
    try:
        return await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        return b""


async def test_connections_with_unfinished_heads_are_cut_after_the_timeout() -> None:
    # 3 s: on a loaded machine a connection's partial head may reach the server a second after its
    # connect, and the server then rightly counts it as silent (no answer) instead of unfinished (408)
    async with serving(http=with_head_timeout(3.0)) as port:
        started = time.monotonic()
        connections = await _open_unfinished(port, 3000)
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(10)]  # send nothing at all
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/json")).status_code == 200  # others are still served meanwhile
        answers = await asyncio.gather(*(_closed_by_server(r) for r, _ in connections + silent))
        elapsed = time.monotonic() - started
        assert sum(a.startswith(b"HTTP/1.1 408 ") for a in answers) == 3000
        assert answers[-10:] == [b""] * 10
        first = answers[0].split(b"\r\n\r\n", 1)[1]
        assert json.loads(first) == {"status_code": 408, "detail": "request head not complete within 3.0 s"}
        assert elapsed < 20
        for _, writer in connections + silent:
            writer.close()


async def test_a_complete_head_is_not_timed_and_keep_alive_goes_on() -> None:
    async with serving(http=with_head_timeout(0.5)) as port:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(3):
                assert (await client.get("/stream")).status_code == 200  # slower than nothing, fine
                await asyncio.sleep(0.3)


async def test_a_50_mb_header_is_refused_without_holding_it() -> None:
    async with serving(h11_max_incomplete_event_size=64 * 1024) as port:
        gc.collect()
        rss_before = psutil.Process().memory_info().rss
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /json HTTP/1.1\r\nHost: x\r\nX-Big: ")
        chunk = b"a" * (64 * 1024)
        sent = 0
        with contextlib.suppress(ConnectionError):
            for _ in range(50 * 16):  # 50 MB
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        answer = await _closed_by_server(reader)
        writer.close()
        grown = psutil.Process().memory_info().rss - rss_before
        assert answer.startswith(b"HTTP/1.1 431 ") or answer == b""
        assert sent < 50 * 1024 * 1024 or answer == b""
        assert grown < 8 * 1024 * 1024, grown
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            big = await client.get("/json", headers={"X-Fine": "b" * 30_000})
            assert big.status_code == 200


def test_the_settings_become_server_options() -> None:
    settings = load_settings(
        env={"EMPORIUM_HTTP_MAX_CONNECTIONS": "100", "EMPORIUM_HTTP_HEADER_TIMEOUT_S": "3"}, data_dir="/tmp/x"
    )
    options = server_options(settings)
    assert options["limit_concurrency"] == 100 and options["timeout_keep_alive"] == 5.0
    assert options["h11_max_incomplete_event_size"] == 64 * 1024
    assert issubclass(options["http"], CoalescingHttpToolsProtocol) and options["http"].head_timeout_s == 3.0
    off = server_options(load_settings(env={"EMPORIUM_HTTP_HEADER_TIMEOUT_S": "0"}, data_dir="/tmp/x"))
    assert off["http"].head_timeout_s is None


async def test_past_the_connection_limit_new_requests_get_503() -> None:
    async with serving(limit_concurrency=20) as port:
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(25)]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/json")).status_code == 503
        for _, writer in idle:
            writer.close()
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/json")).status_code == 200
