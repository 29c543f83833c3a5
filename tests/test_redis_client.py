"""Redis clients: TCP keepalive on TCP connections, none asked of unix sockets."""

from __future__ import annotations

import socket

from redis.asyncio import Redis

from chatroom.redis_client import connect, keepalive_options, read_limit_s
from conftest import Backend


def _socket_of(client: Redis) -> socket.socket | None:
    """The socket of the client's one idle connection."""
    connection = client.connection_pool._available_connections[0]
    writer = connection._writer
    assert writer is not None
    sock: socket.socket | None = writer.transport.get_extra_info("socket")
    return sock


async def test_tcp_connections_keep_alive_and_unix_sockets_work(backend: Backend) -> None:
    for blocking in (False, True):
        client = connect(backend.redis_url, blocking=blocking)
        try:
            assert await client.ping()  # a unix socket would refuse socket_keepalive here
            sock = _socket_of(client)
            assert sock is not None
            if backend.redis_url.startswith("unix://"):
                assert sock.family == socket.AF_UNIX
                continue
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 5
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
        finally:
            await client.aclose()


def test_keepalive_is_asked_for_tcp_urls_only() -> None:
    assert keepalive_options("redis://127.0.0.1:6379/0")["socket_keepalive"] is True
    assert keepalive_options("rediss://redis.example:6380/0")["socket_keepalive"] is True
    assert keepalive_options("unix:///run/redis.sock?db=2") == {}


def test_a_blocking_read_may_take_its_block_plus_the_hang_margin() -> None:
    assert read_limit_s(None) == 10.0
    assert read_limit_s(2_000) == 12.0
