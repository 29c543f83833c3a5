"""What one client can hold of a node over HTTP: request bodies (size and pace), and
connections (how many, from one address, and how long before their headers are in).

Real sockets against an app node under uvicorn, configured as `chatroom serve` is. A
stranger is 127.0.0.1; the legitimate client comes from 127.0.0.2 (all of 127/8 is
loopback on Linux), so the per-address limit tells them apart.
"""

from __future__ import annotations

import asyncio
import json

import httpx

from chat_apps import AppNode
from conftest import StartApp
from waiting import wait_until

STRANGER = "127.0.0.1"
LEGIT = "127.0.0.2"
# Generous: a refusal is at once, a header deadline is 1 s in these tests.
ANSWER_TIMEOUT_S = 10.0


def _port(node: AppNode) -> int:
    return int(node.url.rsplit(":", 1)[1])


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connect(node: AppNode, source: str = STRANGER) -> Stream:
    return await asyncio.open_connection("127.0.0.1", _port(node), local_addr=(source, 0))


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The status and the body of the HTTP answer on `reader` (read to its end)."""
    raw = await asyncio.wait_for(reader.read(), ANSWER_TIMEOUT_S)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, body


async def _closed(reader: asyncio.StreamReader) -> bool:
    """True once the server closed the connection (EOF or a reset)."""
    try:
        return await asyncio.wait_for(reader.read(65536), ANSWER_TIMEOUT_S) == b""
    except ConnectionResetError:
        return True


async def test_a_body_over_the_limit_is_refused_before_it_is_read(chat_app: StartApp) -> None:
    node = await chat_app()  # the default limit: 64 KiB
    # A declared length over the limit: refused as soon as the headers are in, with the
    # usual error body, though not one byte of the body was sent.
    reader, writer = await _connect(node)
    writer.write(
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 67108864\r\n\r\n"
    )
    await writer.drain()
    status, body = await _answer(reader)
    writer.close()
    assert status == 413
    assert json.loads(body)["error"]["code"] == "body_too_large"

    # No declared length (chunked): refused once the streamed bytes pass the limit,
    # though the body has not ended.
    reader, writer = await _connect(node)
    writer.write(
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    for _ in range(65):
        writer.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
    await writer.drain()
    status, body = await _answer(reader)
    writer.close()
    assert status == 413
    assert json.loads(body)["error"]["code"] == "body_too_large"

    async with node.client() as client:
        # A body within the limit is read and judged as before.
        small = await client.post("/api/login", json={"username": "alice", "password": "x" * 9})
        assert small.status_code == 401


async def test_a_stalled_body_is_refused(chat_app: StartApp) -> None:
    node = await chat_app(settings={"request_body_timeout_s": "0.5"})
    reader, writer = await _connect(node)
    writer.write(
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"username"'
    )
    await writer.drain()
    status, body = await _answer(reader)  # and nothing more is ever sent
    writer.close()
    assert status == 408
    assert json.loads(body)["error"]["code"] == "body_timeout"


async def test_idle_and_trickling_connections_are_closed_and_a_legit_client_gets_in(
    chat_app: StartApp,
) -> None:
    node = await chat_app(
        settings={"request_header_timeout_s": "1", "max_connections_per_address": "30"}
    )
    # Twenty connections that never send a byte, ten that trickle a request's headers.
    idle = [await _connect(node) for _ in range(20)]
    trickling = [await _connect(node) for _ in range(10)]

    async def trickle(writer: asyncio.StreamWriter) -> None:
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        try:
            while not writer.is_closing():
                writer.write(b"X-a: b\r\n")
                await writer.drain()
                await asyncio.sleep(0.2)
        except ConnectionError:
            return

    tricklers = [asyncio.create_task(trickle(writer)) for _, writer in trickling]
    try:
        # The stranger has used up their address: one more is closed at once...
        reader, writer = await _connect(node)
        assert await _closed(reader)
        writer.close()
        # ...while a client elsewhere is served.
        transport = httpx.AsyncHTTPTransport(local_address=LEGIT)
        async with node.client(transport=transport) as client:
            assert (await client.get("/healthz")).status_code == 200
        # Every idle and trickling connection is closed by the header deadline.
        for reader, _ in [*idle, *trickling]:
            assert await _closed(reader)
        await wait_until(
            lambda: node.server.config.guard.open_from(STRANGER) == 0,  # type: ignore[attr-defined]
            what="the stranger's connections are forgotten",
        )
        # Then the stranger, as a client like any other, gets in again.
        async with node.client() as client:
            assert (await client.get("/healthz")).status_code == 200
    finally:
        for task in tricklers:
            task.cancel()
        for _, writer in [*idle, *trickling]:
            writer.close()


async def test_a_node_holds_at_most_its_connection_limit(chat_app: StartApp) -> None:
    node = await chat_app(settings={"max_connections": "5"})
    held = [await _connect(node, LEGIT) for _ in range(5)]
    reader, writer = await _connect(node)
    assert await _closed(reader)
    writer.close()
    for _, held_writer in held:
        held_writer.close()
    await wait_until(lambda: len(node.server.config.guard) == 0)  # type: ignore[attr-defined]
    async with node.client() as client:
        assert (await client.get("/healthz")).status_code == 200


async def test_headers_over_the_limit_are_refused(chat_app: StartApp) -> None:
    node = await chat_app(settings={"request_header_max_bytes": "4096"})
    reader, writer = await _connect(node)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    for _ in range(100):
        writer.write(b"X-Padding: " + b"p" * 100 + b"\r\n")
    await writer.drain()
    status, body = await _answer(reader)
    writer.close()
    assert status == 431
    assert json.loads(body)["error"]["code"] == "headers_too_large"
